"""Test-time SDPO: the paper's discovery problem at laptop scale (notebook 04).

One hard question, a verifier that says whether an answer is right (plus one line of feedback), and a budget of
attempts: how many attempts until the first correct answer? Three ways to spend the same attempts, with the same
model, sampling temperature and feedback:

- **best-of-k**: k independent samples from the unchanged model;
- **multi-turn retry**: one conversation per search; after each failed attempt its feedback goes into the chat and
  the model tries again (only the last `window` exchanges are kept, so the context stays small);
- **test-time SDPO**: `SDPOTrainer` on that one question. Each step samples G attempts; the self-teacher reads each
  failed attempt with its own feedback; the student is distilled towards it; the next G attempts come from the
  updated model. (GRPO at test time is best-of-k until the first success: with every reward 0 its advantages are
  0, so nothing changes before the question is already solved.)

A search is a list of *batches* of exchangeable attempts: best-of-k is one batch of n, multi-turn is batches of
one, SDPO batches of G. The probability of having found a correct answer within k attempts follows from the batch
counts without simulation (`found_by`); averaged over questions it is the discovery curve, with a 95% interval from
resampling questions (`discovery_curves`), and `attempts_ratio` says how many times more attempts one method needs
than another to reach the same discovery probability.
"""
from __future__ import annotations

import math
import random
import time
import zlib
from dataclasses import dataclass, field

from transformers import TrainerCallback

from sdpo_lite.config import SDPOConfig
from sdpo_lite.rewards import split_reward_outputs

__all__ = ["Budget", "BUDGETS", "Search", "found_by", "best_of_k", "multi_turn", "sdpo_at_test_time",
           "discovery_curves", "attempts_ratio", "attempts_to_reach", "paired_difference", "feedback_probe",
           "outcome_shares", "sampling_seed"]

METHODS = ("best-of-k", "multi-turn", "test-time SDPO")


@dataclass(frozen=True)
class Budget:
    """How big notebook 04's study is, per profile (the model, G and the token budget come from the profile)."""

    questions: int  # hard questions searched (the first of data/addition_hard)
    attempts: int  # attempts per search, a multiple of the profile's num_generations
    best_of_n: int  # best-of-k samples per question: more than `attempts`, so the curve reaches past the others
    chains: int  # multi-turn conversations per question
    window: int  # multi-turn: attempt/feedback exchanges kept in the chat
    learning_rate: float  # test-time SDPO's step size
    note: str = ""


BUDGETS = {
    # lr: notebook 01's; on the twelve hard questions 1e-4 found fewer answers (benchmarks/test_time.py, README)
    "cpu": Budget(questions=6, attempts=24, best_of_n=48, chains=1, window=3, learning_rate=1e-5,
                  note="about 7.5 minutes on 2 cores"),
    "lowmem": Budget(questions=6, attempts=24, best_of_n=48, chains=1, window=3, learning_rate=1e-4,
                     note="LoRA; learning rate not tuned"),
    "gpu": Budget(questions=6, attempts=24, best_of_n=48, chains=1, window=3, learning_rate=1e-5,
                  note="not yet run on a GPU; the questions were chosen as hard for SmolLM2-135M"),
    "tiny": Budget(questions=2, attempts=8, best_of_n=8, chains=1, window=2, learning_rate=1e-3,
                   note="development only: random weights, numbers mean nothing"),
}


@dataclass
class Search:
    """One search for one question: every attempt, in the order the method made them, grouped into batches.

    Attempts inside a batch are exchangeable (sampled together from the same model and context); a search stops
    after the first batch with a success.
    """

    method: str
    question: str  # the row's uid
    seed: int
    batches: list[list[bool]] = field(default_factory=list)  # success of every attempt, batch by batch
    attempts: list[str] = field(default_factory=list)  # the attempts' texts, in the same order
    feedback: list[str | None] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_attempts(self) -> int:
        return sum(len(b) for b in self.batches)

    @property
    def solved(self) -> bool:
        return any(any(b) for b in self.batches)

    def found_by(self, k: int) -> float:
        return found_by(self.batches, k)

    def to_json(self) -> dict:
        return {"method": self.method, "question": self.question, "seed": self.seed, "batches": self.batches,
                "attempts": self.attempts, "feedback": self.feedback, "seconds": round(self.seconds, 2)}


def found_by(batches: list[list[bool]], k: int) -> float:
    """P(a correct attempt among the first k), given batches of exchangeable attempts in the order they were made.

    Inside the batch where the k-th attempt falls, m of its `size` attempts count; with c successes in it, the
    chance that m attempts drawn from it miss them all is C(size - c, m) / C(size, m) (for one batch of n samples
    this is the unbiased pass@k estimator). Asking beyond an unsuccessful search's budget is an error.
    """
    seen = 0
    for batch in batches:
        if seen >= k:
            return 0.0
        size, c, m = len(batch), sum(batch), min(len(batch), k - seen)
        if c:
            return 1.0 - math.comb(size - c, m) / math.comb(size, m)
        seen += size
    if seen < k:
        raise ValueError(f"asked for discovery within {k} attempts, but the search made only {seen} and found "
                         "nothing: give every method at least k attempts")
    return 0.0


# ----------------------------------------------------------------------------------------------------------------
# The three methods
# ----------------------------------------------------------------------------------------------------------------
def sampling_seed(question: str, seed: int) -> int:
    """A seed of its own for every (question, seed): with one seed for all questions, the same random stream gives
    similar replies to similar prompts, and the questions would no longer be independent evidence."""
    return seed * 1_000_003 + zlib.crc32(question.encode()) % 1_000_003


def _successes(scores: list[float | None]) -> list[bool]:
    """A correct attempt scores 1 (the course's binary rewards); None (unscorable) is a failure."""
    return [s is not None and s >= 1.0 for s in scores]


def _score(reward, conversations, completions, ids, row) -> tuple[list[bool], list[str | None]]:
    columns = {k: [v] * len(completions) for k, v in row.items() if k not in ("prompt", "uid")}
    outputs = reward(conversations, completions, completion_ids=ids, **columns)
    scores, feedback = split_reward_outputs(outputs, len(completions), getattr(reward, "__name__", "reward"))
    return _successes(scores), feedback


def _question(row) -> list[dict]:
    return row["prompt"] if isinstance(row["prompt"], list) else [{"role": "user", "content": row["prompt"]}]


def best_of_k(model, tokenizer, row: dict, reward, *, n: int, max_new_tokens: int, temperature: float = 1.0,
              seed: int = 0, chunk: int = 32) -> Search:
    """n independent samples from the unchanged model, as one batch (so `found_by` is the pass@k estimator)."""
    from sdpo_lite.course.rollouts import sample_completions

    start, search = time.perf_counter(), Search("best-of-k", row["uid"], seed)
    successes = []
    for i in range(0, n, chunk):  # bounded batches: n = 64 replies at once would only cost memory
        size = min(chunk, n - i)
        texts, ids = sample_completions(model, tokenizer, [_question(row)], n=size, max_new_tokens=max_new_tokens,
                                        temperature=temperature, seed=sampling_seed(row["uid"], seed) + i)
        ok, feedback = _score(reward, [_question(row)] * size, texts, ids, row)
        successes += ok
        search.attempts += texts
        search.feedback += feedback
    search.batches = [successes]
    search.seconds = time.perf_counter() - start
    return search


RETRY = "{feedback} Try again."


def multi_turn(model, tokenizer, rows: list[dict], reward, *, chains: int, attempts: int, max_new_tokens: int,
               temperature: float = 1.0, window: int = 4, seed: int = 0) -> list[Search]:
    """`chains` conversations per question, `attempts` turns each: attempt, feedback in the chat, attempt again.

    Every live conversation of every question advances one turn per `generate` call (left-padded into one batch).
    The chat keeps the question and the last `window` attempt/feedback exchanges: SmolLM2 was trained on short
    chats, and a bounded context keeps each turn's cost flat.
    """
    from sdpo_lite.course.rollouts import sample_completions

    searches = [Search("multi-turn", row["uid"], seed * 1000 + c) for row in rows for c in range(chains)]
    owners = [row for row in rows for _ in range(chains)]
    history: list[list[dict]] = [[] for _ in searches]  # the exchanges so far, per search
    start = time.perf_counter()
    for turn in range(attempts):
        live = [i for i, s in enumerate(searches) if not s.solved]
        if not live:
            break
        chats = [_question(owners[i]) + history[i][-2 * window:] for i in live]
        texts, ids = sample_completions(model, tokenizer, chats, max_new_tokens=max_new_tokens,
                                        temperature=temperature, seed=sampling_seed(rows[0]["uid"], seed) + turn)
        for i, chat, text, tokens in zip(live, chats, texts, ids):
            (ok,), (feedback,) = _score(reward, [chat], [text], [tokens], owners[i])
            searches[i].batches.append([ok])
            searches[i].attempts.append(text)
            searches[i].feedback.append(feedback)
            history[i] += [{"role": "assistant", "content": text},
                           {"role": "user", "content": RETRY.format(feedback=feedback or "That is not right.")}]
    for s in searches:
        s.seconds = (time.perf_counter() - start) / len(searches)  # the batch's time, shared out
    return searches


class _Recorder:
    """Wraps a reward function and keeps every call's successes, completions and feedback (one call = one step)."""

    def __init__(self, reward):
        self.reward, self.__name__ = reward, getattr(reward, "__name__", "reward")
        self.batches: list[list[bool]] = []
        self.attempts: list[str] = []
        self.feedback: list[str | None] = []

    def __call__(self, prompts, completions, **kwargs):
        outputs = self.reward(prompts, completions, **kwargs)
        scores, feedback = split_reward_outputs(outputs, len(completions), self.__name__)
        self.batches.append(_successes(scores))
        self.attempts += [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        self.feedback += feedback
        return outputs


class _StopWhenSolved(TrainerCallback):
    """End training at the first step with a correct attempt: the search is over (discovery, not accuracy)."""

    def __init__(self, recorder: _Recorder):
        self.recorder = recorder

    def on_step_end(self, args, state, control, **kwargs):
        if any(self.recorder.batches[-1] if self.recorder.batches else ()):
            control.should_training_stop = True


def sdpo_at_test_time(row: dict, reward, profile, *, attempts: int, learning_rate: float, seed: int = 0,
                   sdpo: SDPOConfig | None = None, output_dir: str = "/tmp/sdpo_course/test_time",
                   **grpo_overrides) -> Search:
    """SDPO on one question from fresh weights: `attempts / profile.num_generations` steps of G attempts each.

    The profile gives the model, G (`num_generations`), the completion budget and the temperature; the dataset is
    the one question, repeated once per step. Every failed attempt's teacher reads that attempt's own feedback
    (there is no successful peer before the discovery). Stops at the first step with a correct attempt.
    """
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from sdpo_lite.course.models import add_lora, load_model
    from sdpo_lite.course.recipes import grpo_args, release_memory
    from sdpo_lite.trainer import SDPOTrainer

    group = profile.num_generations
    if attempts % group:
        raise ValueError(f"attempts={attempts} must be a multiple of the profile's {group} generations per step")
    start = time.perf_counter()
    model, tokenizer = load_model(profile.model_name, verbose=False)
    if profile.lora_rank:  # the lowmem profile: adapters on a frozen base (and the teacher is a second adapter)
        model = add_lora(model, profile.lora_rank)
    columns = {k: v for k, v in row.items() if k not in ("prompt", "uid")}
    dataset = Dataset.from_list([{"prompt": _question(row), **columns}] * (attempts // group))
    recorder = _Recorder(reward)
    args = grpo_args(profile, output_dir, seed=sampling_seed(row["uid"], seed), max_steps=attempts // group,
                     learning_rate=learning_rate, per_device_train_batch_size=group, gradient_accumulation_steps=1,
                     disable_tqdm=True, **grpo_overrides)
    trainer = SDPOTrainer(model=model, args=args, sdpo_config=sdpo or SDPOConfig(), processing_class=tokenizer,
                          reward_funcs=[recorder], train_dataset=dataset)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_StopWhenSolved(recorder))
    trainer.train()
    del trainer, model
    release_memory()
    return Search("test-time SDPO", row["uid"], seed, recorder.batches, recorder.attempts, recorder.feedback,
                  time.perf_counter() - start)


def feedback_probe(model, tokenizer, row: dict, reward, *, offset: int = 10) -> dict:
    """Can the self-teacher use "too low"? The probability of the right digit, without and with the feedback.

    Take a bare-number attempt `offset` below (and above) the answer, score it with `reward` for its feedback, and
    build that attempt's teacher message. At the first digit where attempt and answer differ, after their shared
    prefix, the teacher's next-token distribution is what SDPO distils; this returns the probability that the
    student (plain question) and the teacher (question + feedback) put on the *right* digit there. An attempt with
    a different number of digits (100 - 10 = 90) shares no such prefix and gives None. Digits are single tokens for
    SmolLM2's and Qwen's tokenizers; anything else is refused.
    """
    from sdpo_lite.course.rollouts import next_token_views
    from sdpo_lite.reprompt import build_teacher_message

    truth, question = str(row["expected"]), _question(row)
    out = {}
    for name, attempt in (("too low", str(row["expected"] - offset)), ("too high", str(row["expected"] + offset))):
        if len(attempt) != len(truth):
            out[name] = None
            continue
        at = next(i for i, (a, b) in enumerate(zip(attempt, truth)) if a != b)
        (scored,) = reward([question], [attempt], expected=[row["expected"]], completion_ids=[[0]])
        message = build_teacher_message(question[-1]["content"], None, scored["feedback"], SDPOConfig())[0]
        views = next_token_views(model, tokenizer, question, truth, message)  # scored on the right answer's tokens
        if [v["token"] for v in views[:len(truth)]] != list(truth):
            raise ValueError(f"{truth!r} is not one token per digit for this tokenizer")
        out[name] = {"attempt": attempt, "feedback": scored["feedback"], "digit": truth[at],
                     "p_student": views[at]["p_student"], "p_teacher": views[at]["p_teacher"]}
    return out


# ----------------------------------------------------------------------------------------------------------------
# Curves and their uncertainty
# ----------------------------------------------------------------------------------------------------------------
def _per_question(searches: list[Search], ks: list[int]) -> dict[str, list[float]]:
    """Each question's discovery curve: the mean of its searches' `found_by(k)`."""
    by_question: dict[str, list[Search]] = {}
    for s in searches:
        by_question.setdefault(s.question, []).append(s)
    return {q: [sum(s.found_by(k) for s in group) / len(group) for k in ks] for q, group in by_question.items()}


def discovery_curves(searches: list[Search], ks: list[int], *, resamples: int = 2000,
                     seed: int = 0) -> dict[str, dict[str, list[float]]]:
    """Per method: the mean over questions of P(found within k), and a 95% percentile interval from resampling the
    questions with replacement (a question is the unit: its searches share its difficulty).

    Returns {method: {"mean": [...], "low": [...], "high": [...], "questions": n}} over `ks`.
    """
    out = {}
    for method in dict.fromkeys(s.method for s in searches):
        curves = list(_per_question([s for s in searches if s.method == method], ks).values())
        mean = [sum(c[i] for c in curves) / len(curves) for i in range(len(ks))]
        draws = _resampled_means(curves, resamples, seed)
        out[method] = {"mean": mean, "low": [_quantile([d[i] for d in draws], 0.025) for i in range(len(ks))],
                       "high": [_quantile([d[i] for d in draws], 0.975) for i in range(len(ks))],
                       "questions": len(curves)}
    return out


def attempts_to_reach(curve: list[float], ks: list[int], level: float) -> float:
    """The number of attempts at which `curve` (over `ks`) first reaches `level`, interpolated linearly between
    the ks; infinity if it never does."""
    previous_k, previous = 0, 0.0
    for k, value in zip(ks, curve):
        if value >= level:
            return previous_k + (k - previous_k) * (level - previous) / (value - previous) if value > previous else k
        previous_k, previous = k, value
    return math.inf


def attempts_ratio(searches: list[Search], method: str, baseline: str, ks: list[int], level: float, *,
                   resamples: int = 2000, seed: int = 0) -> dict:
    """How many times more attempts `baseline` needs than `method` to reach discovery probability `level`.

    The point estimate uses all questions; the 95% interval resamples questions (the same draw for both methods,
    so the comparison is paired). A resample in which a method never reaches `level` within max(ks) counts as an
    infinite number of attempts, so the interval can be open-ended ("at least ...").
    """
    if not 0 < level <= 1:
        raise ValueError(f"level={level}: a discovery probability in (0, 1] (at 0 every method needs no attempts)")
    ours = _per_question([s for s in searches if s.method == method], ks)
    theirs = _per_question([s for s in searches if s.method == baseline], ks)
    questions = sorted(set(ours) & set(theirs))
    if not questions:
        raise ValueError(f"no question was searched by both {method!r} and {baseline!r}")

    def ratio(chosen: list[str]) -> float:
        mine = attempts_to_reach(_mean_curve([ours[q] for q in chosen]), ks, level)
        other = attempts_to_reach(_mean_curve([theirs[q] for q in chosen]), ks, level)
        return math.nan if math.isinf(mine) and math.isinf(other) else other / mine

    rng = random.Random(seed)
    draws = [ratio([rng.choice(questions) for _ in questions]) for _ in range(resamples)]
    draws = [d for d in draws if d == d]  # NaN: neither reached the level in that resample
    return {"level": level, "ratio": ratio(questions), "questions": len(questions),
            "low": _quantile(draws, 0.025) if draws else math.nan,
            "high": _quantile(draws, 0.975) if draws else math.nan,
            "attempts": {method: attempts_to_reach(_mean_curve(list(ours.values())), ks, level),
                         baseline: attempts_to_reach(_mean_curve(list(theirs.values())), ks, level)}}


def paired_difference(searches: list[Search], method: str, baseline: str, k: int, *, resamples: int = 2000,
                      seed: int = 0) -> dict:
    """P(found within k) of `method` minus `baseline`'s, over the questions both searched, with a 95% interval from
    resampling questions (paired: the same draw for both). An interval containing 0: no measurable difference."""
    ours = _per_question([s for s in searches if s.method == method], [k])
    theirs = _per_question([s for s in searches if s.method == baseline], [k])
    questions = sorted(set(ours) & set(theirs))
    if not questions:
        raise ValueError(f"no question was searched by both {method!r} and {baseline!r}")
    diffs = [ours[q][0] - theirs[q][0] for q in questions]
    rng = random.Random(seed)
    draws = [sum(rng.choice(diffs) for _ in diffs) / len(diffs) for _ in range(resamples)]
    return {"k": k, "difference": sum(diffs) / len(diffs), "low": _quantile(draws, 0.025),
            "high": _quantile(draws, 0.975), "questions": len(questions)}


def versus(searches: list[Search], curves: dict, ks: list[int], method: str,
           baseline: str = "best-of-k") -> tuple[list[str], dict | None]:
    """`method` against `baseline` at the full budget max(ks), as notebook 04 and benchmarks/test_time.py report it.

    Two readings: the paired difference in P(found within max(ks)); then the attempts ratio at the lower of the two
    curves' final values (the highest level both reach). Returns the report's lines and the attempts ratio (None
    when one method found nothing: there is no level to compare at)."""
    k = ks[-1]
    diff = paired_difference(searches, method, baseline, k)
    lines = [f"{method} minus {baseline}, found within {k}: {diff['difference']:+.0%} [95% interval "
             f"{diff['low']:+.0%} to {diff['high']:+.0%}], {diff['questions']} questions paired"]
    finals = {m: curves[m]["mean"][-1] for m in (method, baseline)}
    level = min(finals.values())
    if level == 0:
        empty = " and ".join(m for m, v in finals.items() if v == 0)
        lines.append(f"{method}: {empty} found no answer in {k} attempts on any question, so no level to compare at")
        return lines, None
    ratio = attempts_ratio(searches, method, baseline, ks, level)
    lines.append(f"{method}: {baseline} needs {ratio['ratio']:.2f}x the attempts [95% interval {ratio['low']:.2f} to "
                 f"{ratio['high']:.2f}] to reach {level:.0%} ({ratio['attempts'][baseline]:.1f} vs "
                 f"{ratio['attempts'][method]:.1f} attempts)")
    return lines, ratio


def outcome_shares(search: Search) -> list[dict[str, float]]:
    """Per batch, the share of attempts that were correct, cut off, had no number, or had a wrong number, read
    from the feedback (the course's addition feedback; None = correct): what the attempts turned into, step by step."""
    shares, start = [], 0
    for batch in search.batches:
        texts = [f or "" for f in search.feedback[start:start + len(batch)]]
        kinds = {"correct": sum(batch), "cut off": sum("cut off" in t for t in texts),
                 "no number": sum("no number" in t for t in texts)}
        kinds["wrong number"] = len(batch) - sum(kinds.values())
        shares.append({k: v / len(batch) for k, v in kinds.items()})
        start += len(batch)
    return shares


def _mean_curve(curves: list[list[float]]) -> list[float]:
    return [sum(c[i] for c in curves) / len(curves) for i in range(len(curves[0]))]


def _resampled_means(curves: list[list[float]], resamples: int, seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    return [_mean_curve([rng.choice(curves) for _ in curves]) for _ in range(resamples)]


def _quantile(values: list[float], q: float) -> float:
    """The q-quantile by linear interpolation between order statistics (numpy's default), infinities allowed."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    if low == high or ordered[low] == ordered[high]:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
