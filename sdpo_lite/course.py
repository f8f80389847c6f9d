"""The notebooks' training recipes: profiles (CPU / GPU / tiny), one-call training runs, and the comparison plot.

Notebook cells stay short because the work lives here: `train_run("sdpo", profile, reward)` loads fresh weights,
trains, records the per-step numbers a learner wants to see and measures held-out accuracy afterwards.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace

from transformers import TrainerCallback

from sdpo_lite.config import SDPOConfig


@dataclass
class Profile:
    """How big a run is. Chosen from the hardware; every field can be overridden in a notebook cell."""

    name: str
    model_name: str
    steps: int
    prompts_per_step: int
    num_generations: int
    max_completion_length: int
    learning_rate: float  # GRPO's
    eval_limit: int | None  # held-out problems to score (None = all)
    sdpo_learning_rate: float = 1e-5  # the distillation loss wants a smaller step than GRPO (see the benchmark)
    blend_weight: float = 0.9  # lambda of the GRPO+SDPO blend (the paper: 0.9 for weak models)
    temperature: float = 1.0
    eval_tokens: int = 24  # greedy tokens per held-out answer ("68" needs few, a function needs more)
    grad_accum: int = 1  # backward passes per optimiser step: same update, 1/grad_accum of the activation memory
    lora_rank: int | None = None  # None: full fine-tuning; else LoRA adapters of this rank on a frozen base
    note: str = ""

    def __post_init__(self):
        if (self.prompts_per_step * self.num_generations) % self.grad_accum:
            raise ValueError(f"grad_accum={self.grad_accum} must divide the {self.prompts_per_step} x "
                             f"{self.num_generations} rollouts of a step")

    def describe(self) -> str:
        return (f"profile {self.name}: {self.model_name}, {self.steps} steps x {self.prompts_per_step} prompt(s) x "
                f"{self.num_generations} generations, {self.max_completion_length} tokens, lr {self.learning_rate:g}"
                + (f" ({self.note})" if self.note else ""))


PROFILES = {
    "cpu": Profile("cpu", "smollm2-135m", steps=24, prompts_per_step=1, num_generations=8, max_completion_length=16,
                   learning_rate=1e-5, eval_limit=None, sdpo_learning_rate=1e-5,
                   note="about 10 minutes for the whole notebook on 2 cores"),
    # GPU numbers are estimates until measured on a T4: the step time measured on an H200 (README, Performance) x 2.
    "gpu": Profile("gpu", "Qwen/Qwen2.5-0.5B-Instruct", steps=100, prompts_per_step=4, num_generations=8,
                   max_completion_length=32, learning_rate=1e-5, eval_limit=None, sdpo_learning_rate=5e-6,
                   grad_accum=2,
                   note="a free T4 or better; about 12 minutes for notebook 01 on a T4 (an estimate, not yet "
                        "measured on a T4); learning rates not yet tuned on a GPU"),
    # Full fine-tuning of SmolLM2-135M with AdamW and an EMA teacher needs about 3.3 GB; a Binder session has 2 GB.
    # LoRA keeps the base frozen: no optimiser state or teacher copy of the full model; micro-batches of 2 rollouts
    # (the same update) halve the activations again: one code-task step peaked at 1.50 GiB, 1.76 GiB with 8.
    "lowmem": Profile("lowmem", "smollm2-135m", steps=24, prompts_per_step=1, num_generations=8,
                      max_completion_length=16, learning_rate=1e-4, eval_limit=None, sdpo_learning_rate=3e-5,
                      lora_rank=16, grad_accum=4,
                      note="LoRA rank 16 on CPU, 2 rollouts per backward pass, for sessions under 4 GB such as "
                           "Binder's 2 GB; learning rates not tuned"),
    "tiny": Profile("tiny", "tiny", steps=3, prompts_per_step=1, num_generations=4, max_completion_length=8,
                    learning_rate=1e-3, eval_limit=16, sdpo_learning_rate=1e-3,
                    note="development only: random weights, numbers mean nothing"),
}


# What a task changes in each profile: a Python function needs far more tokens than "68", so fewer steps fit in the
# CPU budget (a code step with 8 x 64 tokens takes ~15 s on 2 cores).
TASK_OVERRIDES = {
    "addition": {},
    "code": {
        "cpu": dict(steps=10, max_completion_length=64, eval_tokens=96,
                    note="about 6 minutes for notebook 03 on 2 cores"),
        "lowmem": dict(steps=10, max_completion_length=64, eval_tokens=96),
        "gpu": dict(steps=40, prompts_per_step=4, max_completion_length=256, eval_tokens=256, grad_accum=8,
                    note="a free T4 or better; about 20 minutes for notebook 03 on a T4 (an estimate, not yet "
                         "measured on a T4); not yet tuned on a GPU"),
        "tiny": dict(max_completion_length=16, eval_tokens=16),
    },
    # Notebook 02 (LoRA; the 0.9 GRPO + 0.1 SDPO blend). CPU, one run each: the blend at 1e-4 went 43% -> 56%
    # held-out; pure SDPO 43% -> 11% (1e-4), 29% (3e-5), 43% (1e-5). GPU numbers are untested.
    "parity": {
        "cpu": dict(steps=24, max_completion_length=24, eval_tokens=24, temperature=0.7, learning_rate=1e-4,
                    sdpo_learning_rate=1e-4, eval_limit=None, note="LoRA; about 3 minutes for the notebook on 2 cores"),
        "lowmem": dict(steps=24, max_completion_length=24, eval_tokens=24, temperature=0.7, learning_rate=1e-4,
                       sdpo_learning_rate=1e-4, eval_limit=None, note="LoRA, as the cpu profile of this notebook"),
        "gpu": dict(steps=100, prompts_per_step=4, max_completion_length=256, eval_tokens=256, temperature=1.0,
                    learning_rate=5e-5, sdpo_learning_rate=5e-5, eval_limit=None,
                    note="Unsloth 4-bit QLoRA; not yet run on a GPU"),
        "tiny": dict(steps=2, max_completion_length=16, eval_tokens=16, eval_limit=8, learning_rate=1e-3,
                     sdpo_learning_rate=1e-3, note="development only: random weights, numbers mean nothing"),
    },
}


LOW_MEMORY_BYTES = 4 * 2**30  # under this, the CPU profile's full fine-tuning (about 3.3 GB) does not fit


def choose_profile(name: str | None = None, *, task: str = "addition", **overrides) -> Profile:
    """The profile for this machine and task: `tiny` when SDPO_MODEL=tiny, `gpu` with a CUDA GPU and the Hub,
    `lowmem` on a CPU with under 4 GB to use (Binder), else `cpu`; then the task's adjustments (TASK_OVERRIDES),
    then yours."""
    from sdpo_lite.models import default_model_name
    from sdpo_lite.platform import memory_limit_bytes

    if task not in TASK_OVERRIDES:
        raise ValueError(f"no profiles for task {task!r}; known: {sorted(TASK_OVERRIDES)} (add it to TASK_OVERRIDES)")
    if name is None:
        model = default_model_name()
        name = "tiny" if model == "tiny" else "cpu" if model == "smollm2-135m" else "gpu"
        if name == "cpu" and (memory_limit_bytes() or LOW_MEMORY_BYTES) < LOW_MEMORY_BYTES:
            name = "lowmem"
        if name == "gpu":
            overrides.setdefault("model_name", model)
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)} or None (from the hardware)")
    return replace(PROFILES[name], **{**TASK_OVERRIDES[task].get(name, {}), **overrides})


def grpo_args(profile: Profile, output_dir: str, seed: int = 0, **overrides):
    """A GRPOConfig for the profile: precision from the hardware, no checkpoints, quiet, logging every step."""
    from trl import GRPOConfig

    from sdpo_lite.models import precision_flags

    rollouts = profile.prompts_per_step * profile.num_generations  # one generation batch = one optimiser step
    kwargs = dict(output_dir=output_dir, per_device_train_batch_size=rollouts // profile.grad_accum,
                  gradient_accumulation_steps=profile.grad_accum, num_generations=profile.num_generations,
                  max_completion_length=profile.max_completion_length,
                  max_steps=profile.steps, learning_rate=profile.learning_rate, temperature=profile.temperature,
                  lr_scheduler_type="constant", warmup_steps=0, logging_steps=1, save_strategy="no", report_to=[],
                  seed=seed, disable_tqdm=False, **precision_flags(),
                  # TRL checkpoints activations by default; transformers' default non-reentrant variant kept 1.4 GB
                  # for one LoRA SmolLM2 pass over 8 x 264 tokens on the CPU, the reentrant one 0.34 GB.
                  gradient_checkpointing_kwargs={"use_reentrant": True})
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)


@dataclass
class RunResult:
    """What one training run did: per-step training numbers and held-out accuracy after training.

    `trainer` and `model` are None unless the run was asked to keep them (`train_run(keep=...)`): a notebook that
    compares three runs must not hold three models, optimisers and teachers at once (a T4 has 15 GB, Binder 2).
    """

    label: str
    history: list[dict] = field(default_factory=list)  # one dict per optimiser step (TRL's logs)
    accuracy: float | None = None
    seconds: float = 0.0
    sdpo_enabled: bool = False
    rollouts: list = field(default_factory=list)  # the last step's RolloutRecords (trainer.last_rollouts)
    trainer: object = None
    model: object = None

    @property
    def key(self) -> str:
        """A short name for recorded results: "blend (lambda=0.9)" -> "blend", "SDPO, no feedback" -> "sdpo_no_feedback"."""
        return re.sub(r"\W+", "_", self.label.split(" (")[0].lower()).strip("_")

    def series(self, key: str) -> list[float]:
        return [h.get(key, float("nan")) for h in self.history]


KEEP = {"records": "the numbers and the last step's rollouts only",
        "model": "also the trained model and its trainer (EMA teacher, tokenizer, settings); optimiser state freed",
        "all": "everything, optimiser state included (to train on)"}


def train_run(label: str, profile: Profile, reward_funcs, *, sdpo: SDPOConfig | None = None, seed: int = 0,
              dataset=None, evaluate: bool = True, eval_task: str = "addition", output_dir: str | None = None,
              model_and_tokenizer=None, log_every: int | None = 4, keep: str = "records",
              **grpo_overrides) -> RunResult:
    """Train from fresh weights with SDPO (`sdpo` given, enabled or not) and report per-step numbers + accuracy.

    `keep` (see KEEP) says what outlives the run; the rest is freed before returning, so the next run starts
    from the memory this one started from."""
    if keep not in KEEP:
        raise ValueError(f"keep={keep!r}; choose one of " + "; ".join(f"{k!r}: {v}" for k, v in KEEP.items()))
    from sdpo_lite.data import load_task, to_conversational
    from sdpo_lite.evaluate import accuracy
    from sdpo_lite.models import load_model
    from sdpo_lite.trainer import SDPOTrainer

    start = time.perf_counter()
    model, tok = model_and_tokenizer or load_model(profile.model_name)
    if profile.lora_rank and model_and_tokenizer is None:  # the lowmem profile: adapters on a frozen base
        from sdpo_lite.unsloth import add_lora

        model = add_lora(model, profile.lora_rank)
    if dataset is None:
        dataset = to_conversational(load_task("addition", "train"))
    args = grpo_args(profile, output_dir or f"/tmp/sdpo_course/{label}", seed=seed, **grpo_overrides)
    trainer = SDPOTrainer(model=model, args=args, sdpo_config=sdpo or SDPOConfig(enabled=False), processing_class=tok,
                          reward_funcs=reward_funcs if isinstance(reward_funcs, list) else [reward_funcs],
                          train_dataset=dataset)
    if log_every:  # one short line every few steps instead of TRL's full log dictionaries
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(CompactLog(label, log_every))
    trainer.train()
    result = RunResult(label, [h for h in trainer.state.log_history if "reward" in h], sdpo_enabled=trainer.sdpo.enabled,
                       rollouts=trainer.last_rollouts)
    if keep != "all":
        free_training_state(trainer)  # the optimiser's moments: twice the model's size in fp32
    if evaluate:
        result.accuracy = accuracy(model, tok, eval_task, "heldout", max_new_tokens=profile.eval_tokens, limit=profile.eval_limit,
                                   progress=False).accuracy
    if keep != "records":
        result.trainer, result.model = trainer, model
    del trainer, model
    release_memory()
    result.seconds = time.perf_counter() - start
    return result


def free_training_state(trainer) -> None:
    """Drop the optimiser, its scheduler and the accelerator's references to them: a finished run no longer needs
    them, and for full fine-tuning with AdamW they hold twice the model's weights. The model and teacher stay."""
    trainer.accelerator.free_memory()  # accelerate's own list of prepared models/optimisers/schedulers
    trainer.optimizer = trainer.lr_scheduler = None
    trainer.callback_handler.optimizer = trainer.callback_handler.lr_scheduler = None
    trainer.model.zero_grad(set_to_none=True)  # (accelerate's free_memory has just run the garbage collector)


def release_memory() -> None:
    """Collect what a dropped run left behind (trainers hold reference cycles) and return cached GPU memory."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class CompactLog(TrainerCallback):
    """Print `SDPO step 8/24 | success 0.12 | truncated 75% | with teacher 100% | ... | 41 s` every few steps."""

    def __init__(self, label: str, every: int):
        self.label, self.every, self.start = label, every, time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        step = state.global_step
        if not logs or "reward" not in logs or (step % self.every and step != state.max_steps):
            return
        parts = [f"{self.label} step {step}/{state.max_steps}", f"success {logs['reward']:.2f}",
                 f"truncated {logs.get('completions/clipped_ratio', float('nan')):.0%}"]
        if "sdpo/frac_with_teacher" in logs:
            parts.append(f"with teacher {logs['sdpo/frac_with_teacher']:.0%}")
        if "sdpo/distill_loss" in logs:
            parts.append(f"distill loss {logs['sdpo/distill_loss']:.3f}")
        parts.append(f"{time.perf_counter() - self.start:.0f} s")
        print(" | ".join(parts), flush=True)


def summarise_runs(runs: list[RunResult], before: float | None = None) -> None:
    """Print each run's numbers (and record them for `make run`'s summary): accuracy, success, teacher coverage."""
    from sdpo_lite.evaluate import record_result

    print(f"{'run':24} {'held-out':>9} {'train success':>14} {'truncated':>10} {'with teacher':>13} {'with demo':>10} "
          f"{'minutes':>8}")
    for run in runs:
        mean = lambda key: sum(run.series(key)) / max(len(run.history), 1)  # noqa: E731
        last5 = lambda key: sum(run.series(key)[-5:]) / max(len(run.series(key)[-5:]), 1)  # noqa: E731
        coverage = lambda key: f"{mean(key):.0%}" if run.sdpo_enabled else "-"  # noqa: E731 (GRPO: none)
        print(f"{run.label:24} {run.accuracy:>9.1%} {last5('reward'):>14.2f} {last5('completions/clipped_ratio'):>10.0%} "
              f"{coverage('sdpo/frac_with_teacher'):>13} {coverage('sdpo/frac_with_demo'):>10} {run.seconds / 60:>8.1f}")
        record_result(f"heldout_after_{run.key}", round(run.accuracy, 4))
    if before is not None:
        print(f"held-out accuracy before training: {before:.1%}; train success and truncated (completions that hit "
              "the token limit) = mean of the last 5 steps, sampled at temperature 1")


def print_rollouts(records, limit: int = 3, width: int = 400) -> None:
    """Print rollouts of one step: completion, score, feedback and (shortened) the prompt the teacher read."""
    for i, r in enumerate(records[:limit]):
        kind = "demo + feedback" if r.demo_used and r.feedback_used else "demo" if r.demo_used else (
            "feedback" if r.feedback_used else "no teacher")
        print(f"--- rollout {i} (group {r.group}) score {r.score} [{kind}]")
        print(f"completion: {r.completion!r}")
        print(f"feedback:   {r.feedback!r}")
        if r.teacher_message:
            print("teacher read:", r.teacher_message[:width].replace("\n", "\n    "))


COLOURS = ["#999999", "#0072B2", "#E69F00", "#009E73", "#CC79A7"]  # grey + Okabe-Ito: colour-blind-safe


def plot_comparison(runs: list[RunResult], before: float | None = None, *, key: str = "reward", window: int = 5):
    """Left: training success rate per step (moving average). Right: held-out accuracy before/after per run."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    styles = ["-", "--", ":", "-."]
    for i, run in enumerate(runs):
        ys = run.series(key)
        smooth = [sum(ys[max(0, j - window + 1):j + 1]) / len(ys[max(0, j - window + 1):j + 1]) for j in range(len(ys))]
        left.plot(range(1, len(ys) + 1), smooth, styles[i % 4], lw=2, label=run.label, color=COLOURS[1 + i % 4])
    left.set(xlabel="training step", ylabel=f"success rate ({window}-step mean)", ylim=(-0.02, 1.02),
             title="Training rollouts that were correct")
    left.legend(frameon=False)
    names = ["before"] + [r.label.replace(" (", "\n(") for r in runs]  # wrap long labels under their bars
    values = [before if before is not None else float("nan")] + [r.accuracy for r in runs]
    colors = COLOURS[:len(names)]
    bars = right.bar(names, values, color=colors)
    for bar, v in zip(bars, values):
        right.text(bar.get_x() + bar.get_width() / 2, v + 0.01, f"{v:.0%}", ha="center", va="bottom")
    right.set(ylabel="held-out accuracy", ylim=(0, max(0.1, max(values) * 1.25)), title="Held-out accuracy")
    fig.tight_layout()
    return fig


def next_token_views(model, tokenizer, prompt, completion: str, teacher_message: str, k: int = 3,
                     temperature: float = 1.0) -> list[dict]:
    """Student and self-teacher next-token distributions along one completion (the picture behind SDPO).

    The student reads `prompt` (chat messages or text); the teacher reads the same conversation with the last user
    message replaced by `teacher_message`. Both score the identical completion tokens. Returns one dict per token:
    the token, p_student(token), p_teacher(token) and each side's top-k as (token, probability) pairs.
    """
    import torch

    from sdpo_lite.reprompt import render_teacher_prompt

    def text_of(p):
        return p if isinstance(p, str) else tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)

    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    T = len(completion_ids)

    def logprobs(prompt_text):
        ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"] + completion_ids
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0, -T - 1:-1]
        return torch.log_softmax(logits.float() / temperature, dim=-1)  # (T, V)

    was_training = model.training
    model.eval()
    try:
        student = logprobs(text_of(prompt))
        teacher = logprobs(render_teacher_prompt(prompt, teacher_message, tokenizer))
    finally:
        model.train(was_training)
    tok = lambda i: tokenizer.decode([int(i)])  # noqa: E731
    rows = []
    for t, y in enumerate(completion_ids):
        top_s, top_t = student[t].topk(k), teacher[t].topk(k)
        rows.append({"token": tok(y), "p_student": student[t, y].exp().item(), "p_teacher": teacher[t, y].exp().item(),
                     "student_top": [(tok(i), v.exp().item()) for v, i in zip(top_s.values, top_s.indices)],
                     "teacher_top": [(tok(i), v.exp().item()) for v, i in zip(top_t.values, top_t.indices)]})
    return rows


def print_next_token_views(rows: list[dict]) -> None:
    """A fixed-width table of `next_token_views`: what each side would write next, at every completion token."""
    fmt = lambda top: "  ".join(f"{t!r:>8}:{p:4.2f}" for t, p in top)  # noqa: E731
    print(f"{'token':>10} | {'student top-3':^42} | {'teacher top-3':^42}")
    for r in rows:
        print(f"{r['token']!r:>10} | {fmt(r['student_top'])} | {fmt(r['teacher_top'])}")


def draw_sdpo_data_flow():
    """One SDPO step as a picture: rollouts -> rewards + feedback -> teacher prompts -> two passes -> loss."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    boxes = {  # name: (x, y, text, colour); colours from the Okabe-Ito colour-blind-safe palette
        "prompt": (0.0, 0.62, "prompt x", "#E5E5E5"),
        "policy": (0.20, 0.62, "policy samples\nG completions y", "#56B4E9"),
        "reward": (0.41, 0.62, "reward function\nscore + feedback", "#E69F00"),
        "teacher_prompt": (0.62, 0.62, "teacher prompt:\nx + peer's solution\n+ feedback", "#F0E442"),
        "student": (0.20, 0.12, "student p(. | x, y<t)\n(with gradient)", "#56B4E9"),
        "teacher": (0.62, 0.12, "self-teacher q(. | x, fb, y<t)\n(EMA weights, no gradient)", "#009E73"),
        "loss": (0.41, 0.12, "per-token divergence\non student's top-k + tail", "#CC79A7"),
    }
    fig, ax = plt.subplots(figsize=(11, 3.6))
    ax.set_axis_off()
    for x, y, text, colour in boxes.values():
        ax.add_patch(FancyBboxPatch((x, y), 0.16, 0.26, boxstyle="round,pad=0.01", fc=colour, ec="#333333", alpha=0.9))
        ax.text(x + 0.08, y + 0.13, text, ha="center", va="center", fontsize=9)
    arrows = [("prompt", "policy"), ("policy", "reward"), ("reward", "teacher_prompt"), ("policy", "student"),
              ("teacher_prompt", "teacher"), ("student", "loss"), ("teacher", "loss")]
    for a, b in arrows:
        (x0, y0, *_), (x1, y1, *_) = boxes[a], boxes[b]
        start = (x0 + 0.17, y0 + 0.13) if y0 == y1 else (x0 + 0.08, y0 - 0.01)
        end = (x1 - 0.01, y1 + 0.13) if y0 == y1 else (x1 + 0.08, y1 + 0.27)
        if a == "teacher":
            start, end = (x0 - 0.01, y0 + 0.13), (x1 + 0.17, y1 + 0.13)
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", lw=1.5, color="#333333"))
    ax.text(0.5, 0.97, "One SDPO step: the same network is student (plain prompt) and teacher (prompt + feedback), "
            "scored on the same tokens y", ha="center", va="top", fontsize=10)
    ax.set(xlim=(0, 0.82), ylim=(0.05, 1.0))
    return fig


def rollout_group(model, tokenizer, row: dict, reward_func, *, n: int = 8, max_new_tokens: int = 64,
                  temperature: float = 1.0, config: SDPOConfig | None = None, seed: int = 0) -> list:
    """One SDPO step's bookkeeping, without the training: sample `n` answers to `row`, score them, build teachers.

    The trainer does exactly this for every prompt (sdpo_lite.trainer._attach_teachers): raw rewards decide who
    succeeded, a successful peer's answer becomes the demonstration, and failed rollouts without a peer get their
    own feedback. Returns RolloutRecords (teacher_prompt None = no teacher), ready for `viz.show_teacher_prompt`.
    """
    import torch
    from transformers import GenerationConfig

    from sdpo_lite.trainer import split_reward_outputs

    config = config or SDPOConfig()
    prompt = row["prompt"]  # chat messages (a conversational dataset) or plain text
    prompt = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    batch = tokenizer([text], return_tensors="pt", add_special_tokens=False).to(model.device)
    torch.manual_seed(seed)
    sampling = GenerationConfig(do_sample=True, temperature=temperature, top_k=0, top_p=1.0, num_return_sequences=n,
                                max_new_tokens=max_new_tokens, eos_token_id=model.generation_config.eos_token_id,
                                pad_token_id=tokenizer.pad_token_id)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model.generate(**batch, generation_config=sampling)  # (n, prompt + new tokens)
    finally:
        model.train(was_training)
    completions = tokenizer.batch_decode(output[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    columns = {k: [v] * n for k, v in row.items() if k != "prompt"}  # dataset columns, one entry per completion
    scores, feedback = split_reward_outputs(reward_func([prompt] * n, completions, **columns), n, "reward_func")
    return teacher_records(prompt, completions, scores, feedback, tokenizer, config)


def teacher_records(prompt, completions: list[str], scores: list[float], feedback: list[str | None], tokenizer,
                    config: SDPOConfig | None = None) -> list:
    """The RolloutRecords of one group (one prompt, its completions): who demonstrates, what each teacher reads.

    The trainer's own reprompting (`reprompt.plan_teachers`, `render_teacher_prompt`), on completions you give, so a
    notebook can show teacher prompts (feedback, a peer's solution, stripped thinking) before any training.
    """
    from sdpo_lite.reprompt import RolloutRecord, plan_teachers, render_teacher_prompt

    config = config or SDPOConfig()
    n = len(completions)
    plans = plan_teachers([prompt] * n, completions, feedback, config, groups=[0] * n, scores=scores)
    return [RolloutRecord(prompt=prompt, completion=c, score=s, feedback=f, group=0, **p,
                          teacher_prompt=render_teacher_prompt(prompt, p["teacher_message"], tokenizer)
                          if p["teacher_message"] else None)
            for c, s, f, p in zip(completions, scores, feedback, plans)]
