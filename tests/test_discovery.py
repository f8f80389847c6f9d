"""Test-time SDPO's bookkeeping (sdpo_lite.course.discovery): discovery probability, its curves and ratios, and
the three search methods on the tiny model."""
from __future__ import annotations

import itertools
import math
import random

import pytest

from sdpo_lite.course.discovery import (Search, attempts_ratio, attempts_to_reach, best_of_k, discovery_curves,
                                        found_by, multi_turn, sdpo_at_test_time, versus)

F, T = False, True


def test_found_by_one_batch_is_the_unbiased_pass_at_k():
    batch = [F, T, F, F]
    assert [found_by([batch], k) for k in (1, 2, 3, 4)] == [0.25, 0.5, 0.75, 1.0]
    assert found_by([[F] * 6 + [T, T]], 2) == pytest.approx(1 - math.comb(6, 2) / math.comb(8, 2))


def test_found_by_counts_batches_in_order():
    batches = [[F, F], [F, T]]  # nothing in the first two attempts; one success among the next two
    assert [found_by(batches, k) for k in (1, 2, 3, 4, 9)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert found_by([[F], [F], [T]], 2) == 0.0 and found_by([[F], [F], [T]], 3) == 1.0


def test_found_by_matches_shuffling_each_batch():
    """The closed form equals the average over every order of the attempts inside each batch."""
    batches = [[F, F, F], [T, F, T, F]]
    orders = [list(a) + list(b) for a in itertools.permutations(batches[0]) for b in itertools.permutations(batches[1])]
    for k in range(1, 8):
        assert found_by(batches, k) == pytest.approx(sum(any(o[:k]) for o in orders) / len(orders))


def test_found_by_refuses_a_k_beyond_an_unsuccessful_search():
    assert found_by([[F, F]], 2) == 0.0
    with pytest.raises(ValueError, match="at least k attempts"):
        found_by([[F, F]], 3)


def test_attempts_to_reach_interpolates_and_says_never():
    ks = [1, 2, 4]
    assert attempts_to_reach([0.2, 0.6, 1.0], ks, 0.4) == pytest.approx(1.5)
    assert attempts_to_reach([0.2, 0.6, 1.0], ks, 0.8) == pytest.approx(3.0)
    assert attempts_to_reach([0.2, 0.6, 1.0], ks, 0.1) == pytest.approx(0.5)  # from (0 attempts, 0)
    assert attempts_to_reach([0.2, 0.3, 0.3], ks, 0.5) == math.inf


def _searches(method, per_question):
    return [Search(method, q, s, batches) for q, runs in per_question.items() for s, batches in enumerate(runs)]


def test_discovery_curves_average_questions_and_bracket_the_mean():
    searches = _searches("best-of-k", {"easy": [[[T, T, F, F]]], "hard": [[[F, F, F, F]]]})
    curves = discovery_curves(searches, [1, 2, 4], resamples=500)["best-of-k"]
    assert curves["questions"] == 2
    assert curves["mean"] == pytest.approx([0.25, (1 - 1 / 6) / 2, 0.5])
    assert all(lo <= m <= hi for lo, m, hi in zip(curves["low"], curves["mean"], curves["high"]))
    assert curves["low"][-1] == 0.0 and curves["high"][-1] == 1.0  # a resample may hold two hard or two easy


def test_attempts_ratio_on_known_curves():
    """Sequential search that always succeeds at its 2nd attempt vs best-of-8 with one success in eight: at a
    discovery probability of 0.5 the first needs 1.5 attempts (interpolated), the second 4."""
    ks = list(range(1, 9))
    searches = (_searches("sdpo", {q: [[[F], [T]]] for q in "abc"})
                + _searches("best-of-k", {q: [[[T] + [F] * 7]] for q in "abc"}))
    out = attempts_ratio(searches, "sdpo", "best-of-k", ks, 0.5, resamples=200)
    assert out["attempts"] == {"sdpo": pytest.approx(1.5), "best-of-k": pytest.approx(4.0)}
    assert out["ratio"] == pytest.approx(4 / 1.5) and out["low"] == out["high"] == pytest.approx(4 / 1.5)
    with pytest.raises(ValueError, match="both"):
        attempts_ratio(searches, "sdpo", "multi-turn", ks, 0.5)



def test_versus_reports_the_difference_and_the_ratio_at_the_level_both_reach():
    """The same known curves as above: sdpo finds every question by attempt 2 (1.5 attempts to reach 0.5), best-of-8
    with one success in eight reaches 1.0 at 8 and 0.5 at 4; at the full budget both are at 1.0."""
    ks = list(range(1, 9))
    searches = (_searches("sdpo", {q: [[[F], [T]]] for q in "abc"})
                + _searches("best-of-k", {q: [[[T] + [F] * 7]] for q in "abc"}))
    curves = discovery_curves(searches, ks, resamples=200)
    lines, ratio = versus(searches, curves, ks, "sdpo")
    assert lines[0] == "sdpo minus best-of-k, found within 8: +0% [95% interval +0% to +0%], 3 questions paired"
    assert ratio["level"] == 1.0 and ratio["attempts"] == {"sdpo": 2.0, "best-of-k": 8.0}
    assert lines[1] == "sdpo: best-of-k needs 4.00x the attempts [95% interval 4.00 to 4.00] to reach 100% (8.0 vs 2.0 " \
        "attempts)"


def test_versus_names_the_method_that_found_nothing():
    ks = [1, 2]
    searches = (_searches("multi-turn", {q: [[[F], [F]]] for q in "ab"})
                + _searches("best-of-k", {q: [[[T, F]]] for q in "ab"}))
    lines, ratio = versus(searches, discovery_curves(searches, ks, resamples=50), ks, "multi-turn")
    assert ratio is None
    assert lines[0].startswith("multi-turn minus best-of-k, found within 2: -100% [95% interval -100% to -100%]")
    assert lines[1] == "multi-turn: multi-turn found no answer in 2 attempts on any question, so no level to compare at"

# ----------------------------------------------------------------------------------------------------------------
# The methods, on the tiny model (random weights: the numbers mean nothing, the bookkeeping does)
# ----------------------------------------------------------------------------------------------------------------
ROW = {"uid": "q0", "prompt": "What is 23 + 45? Answer with just the number.", "expected": 68}


class Scripted:
    """A reward that scores attempts by their position in the whole run and remembers what it was shown."""

    __name__ = "scripted"

    def __init__(self, successes=()):
        self.successes, self.calls, self.seen = set(successes), 0, []

    def __call__(self, prompts, completions, completion_ids=None, expected=None, **kwargs):
        out = []
        for prompt in prompts:
            self.seen.append(prompt)
            out.append({"score": float(self.calls in self.successes), "feedback": f"attempt {self.calls} failed"})
            self.calls += 1
        return out


@pytest.fixture(scope="module")
def tiny():
    from sdpo_lite.course.models import load_model

    return load_model("tiny", verbose=False)


def test_best_of_k_is_one_batch_of_n(tiny):
    model, tok = tiny
    search = best_of_k(model, tok, ROW, Scripted({5}), n=12, max_new_tokens=4, chunk=5)
    assert [len(b) for b in search.batches] == [12] and search.batches[0].count(True) == 1
    assert len(search.attempts) == len(search.feedback) == 12 and search.question == "q0"
    assert search.found_by(12) == 1.0 and search.found_by(1) == pytest.approx(1 / 12)


def test_multi_turn_puts_the_feedback_in_the_chat_and_stops_when_solved(tiny):
    model, tok = tiny
    reward = Scripted({3})  # the 4th attempt scored: chain 1's 2nd turn (turn 0 scores chains 0, 1; turn 1: 0, 1)
    searches = multi_turn(model, tok, [ROW], reward, chains=2, attempts=3, max_new_tokens=4, window=1)
    assert [len(s.batches) for s in searches] == [3, 2] and searches[1].solved and not searches[0].solved
    assert all(len(b) == 1 for s in searches for b in s.batches)
    first, later = reward.seen[0], reward.seen[-1]
    assert first == [{"role": "user", "content": ROW["prompt"]}]
    assert later[0] == first[0] and len(later) == 3  # the question + one exchange (window=1)
    assert later[-1] == {"role": "user", "content": "attempt 2 failed Try again."}  # chain 0's 2nd attempt failed


def test_test_time_sdpo_trains_on_the_one_question_and_stops_at_discovery(tiny):
    from sdpo_lite.course.recipes import choose_profile

    profile = choose_profile("tiny")  # 4 generations per step
    unsolved = sdpo_at_test_time(ROW, Scripted(), profile, attempts=8, learning_rate=1e-3,
                              output_dir="/tmp/sdpo_test_time")
    assert [len(b) for b in unsolved.batches] == [4, 4] and not unsolved.solved and unsolved.found_by(8) == 0.0
    assert unsolved.feedback[0] == "attempt 0 failed" and len(unsolved.attempts) == 8
    solved = sdpo_at_test_time(ROW, Scripted({2}), profile, attempts=12, learning_rate=1e-3,
                            output_dir="/tmp/sdpo_test_time")
    assert [len(b) for b in solved.batches] == [4] and solved.found_by(4) == 1.0
    with pytest.raises(ValueError, match="multiple"):
        sdpo_at_test_time(ROW, Scripted(), profile, attempts=6, learning_rate=1e-3)


def test_resampling_is_reproducible():
    rng = random.Random(1)
    searches = _searches("m", {f"q{i}": [[[rng.random() < 0.3 for _ in range(4)]]] for i in range(6)})
    assert discovery_curves(searches, [1, 4], seed=3) == discovery_curves(searches, [1, 4], seed=3)


def test_every_question_gets_its_own_sampling_stream():
    from sdpo_lite.course.discovery import sampling_seed

    seeds = {sampling_seed(f"addition-heldout-{i:03d}", s) for i in range(50) for s in range(3)}
    assert len(seeds) == 150 and sampling_seed("q", 1) == sampling_seed("q", 1)


def test_feedback_probe_reads_the_right_digit_where_the_attempt_first_differs(monkeypatch):
    """The probe scores the right answer's tokens and reads the position where the wrong attempt first differs;
    an attempt with another number of digits is skipped, a tokenizer that merges digits is refused."""
    from sdpo_lite.course import discovery, rollouts
    from sdpo_lite.course.rewards import make_addition_format_reward

    seen = []

    def views(model, tokenizer, prompt, completion, teacher_message, **kw):
        seen.append((completion, teacher_message))
        return [{"token": ch, "p_student": 0.1 * (i + 1), "p_teacher": 0.5 + 0.1 * i}
                for i, ch in enumerate(completion)]

    monkeypatch.setattr(rollouts, "next_token_views", views)
    reward = make_addition_format_reward(16, wrong="direction")
    probe = discovery.feedback_probe(None, None, {"uid": "q", "prompt": "What is 74 + 99?", "expected": 173}, reward)
    assert probe["too low"] == {"attempt": "163", "feedback": "Your answer 163 is too low.", "digit": "7",
                                "p_student": pytest.approx(0.2), "p_teacher": pytest.approx(0.6)}
    assert probe["too high"]["attempt"] == "183" and probe["too high"]["digit"] == "7"
    assert all(c == "173" for c, _ in seen) and "Your answer 163 is too low." in seen[0][1] and "173" not in seen[0][1]
    edge = discovery.feedback_probe(None, None, {"uid": "e", "prompt": "What is 65 + 35?", "expected": 100}, reward)
    assert edge["too low"] is None  # 90 has two digits
    assert edge["too high"]["digit"] == "0"  # 110 first differs from 100 at the tens
    monkeypatch.setattr(rollouts, "next_token_views", lambda *a, **k: [{"token": "17", "p_student": 0, "p_teacher": 0}])
    with pytest.raises(ValueError, match="one token per digit"):
        discovery.feedback_probe(None, None, {"uid": "q", "prompt": "What is 74 + 99?", "expected": 173}, reward)


def test_outcome_shares_reads_what_each_batch_turned_into():
    from sdpo_lite.course.discovery import outcome_shares

    cut, none = "Your reply was cut off at the length limit.", "Your reply had no number."
    wrong = "Your answer 3 is too low."
    search = Search("s", "q", 0, [[F, F, F, F], [F, T]], feedback=[cut, cut, none, wrong, wrong, None])
    assert outcome_shares(search) == [{"correct": 0.0, "cut off": 0.5, "no number": 0.25, "wrong number": 0.25},
                                      {"correct": 0.5, "cut off": 0.0, "no number": 0.0, "wrong number": 0.5}]


def test_attempts_ratio_refuses_a_level_of_zero():
    searches = _searches("a", {"q": [[[F], [T]]]}) + _searches("best-of-k", {"q": [[[T, F]]]})
    with pytest.raises(ValueError, match="no attempts"):
        attempts_ratio(searches, "a", "best-of-k", [1, 2], 0.0)


def test_paired_difference_at_k():
    from sdpo_lite.course.discovery import paired_difference

    searches = (_searches("sdpo", {"a": [[[T]]], "b": [[[F], [F]]]})
                + _searches("best-of-k", {"a": [[[T, F]]], "b": [[[T, F]]]}))
    out = paired_difference(searches, "sdpo", "best-of-k", 1, resamples=400)
    assert out["difference"] == pytest.approx(((1 - 0.5) + (0 - 0.5)) / 2) and out["questions"] == 2
    assert out["low"] == pytest.approx(-0.5) and out["high"] == pytest.approx(0.5)  # {+0.5, -0.5} resampled
