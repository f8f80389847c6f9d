"""sdpo_lite.course.evaluate: greedy batched accuracy on the tiny model, and record_result."""
from __future__ import annotations

import json

import pytest

from sdpo_lite.course import evaluate
from sdpo_lite.course.evaluate import EvalResult, accuracy, generate_greedy, record_result
from sdpo_lite.course.models import load_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SDPO_CACHE", str(tmp_path_factory.mktemp("cache")))
        return load_model("tiny", verbose=False)


@pytest.mark.parametrize("was_training", [True, False])
def test_accuracy_on_tiny_is_sane_and_restores_mode(tiny, was_training):
    model, tok = tiny
    model.train(was_training)
    side = tok.padding_side
    result = accuracy(model, tok, limit=10, batch_size=4, max_new_tokens=6, progress=False)
    assert isinstance(result, EvalResult)
    assert result.n == len(result.examples) == 10
    assert result.correct == sum(ok for *_, ok in result.examples)
    assert 0.0 <= result.accuracy <= 1.0 and result.accuracy == result.correct / 10
    prompt, completion, expected, ok = result.examples[0]
    assert prompt.startswith("What is ") and isinstance(completion, str) and isinstance(expected, int)
    assert model.training is was_training
    assert tok.padding_side == side
    assert str(result).startswith("addition/heldout: ")


def test_batching_does_not_change_greedy_completions(tiny):
    """Left padding done right: a prompt's completion doesn't depend on its batch-mates."""
    model, tok = tiny
    prompts = ["What is 1 + 2?", "What is 23 + 45? Answer with just the number.", "Hi"]
    together = generate_greedy(model, tok, prompts, max_new_tokens=8)
    alone = [generate_greedy(model, tok, [p], max_new_tokens=8)[0] for p in prompts]
    assert together == alone


def test_accuracy_scores_with_the_task_checker(tiny, monkeypatch):
    """With a stand-in generator that writes the right answer for every other problem: 50%."""
    from sdpo_lite.course.tasks import load_task

    answers = {row["prompt"]: row["expected"] for row in load_task("addition", "heldout")}
    calls = []

    def fake(model, tokenizer, prompts, max_new_tokens):
        calls.append(len(prompts))
        return [f"{p[8:15]} equals {answers[p] + (len(calls) + i) % 2}." for i, p in enumerate(prompts)]

    monkeypatch.setattr(evaluate, "generate_greedy", fake)
    result = accuracy(*tiny, limit=20, batch_size=8, progress=False)
    assert calls == [8, 8, 4]
    assert (result.n, result.correct, result.accuracy) == (20, 10, 0.5)


def test_record_result_prints_and_merges(tmp_path, monkeypatch, capsys):
    target = tmp_path / "nb.results.json"
    monkeypatch.setenv("SDPO_RESULTS", str(target))
    record_result("baseline_accuracy", 0.125)
    record_result("after_accuracy", 0.5)
    record_result("baseline_accuracy", 0.15)
    assert capsys.readouterr().out.splitlines() == [
        "baseline_accuracy = 0.125",
        "after_accuracy = 0.5",
        "baseline_accuracy = 0.15",
    ]
    assert json.loads(target.read_text()) == {"after_accuracy": 0.5, "baseline_accuracy": 0.15}


def test_record_result_without_env_only_prints(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SDPO_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    record_result("x", 1)
    assert capsys.readouterr().out == "x = 1\n"
    assert list(tmp_path.iterdir()) == []


def test_progress_is_a_few_printed_lines_not_a_widget(capsys):
    """Each quarter and the end, as plain text: a saved tqdm widget reads "0/120" on GitHub."""
    from sdpo_lite.course.evaluate import ProgressLines

    bar = ProgressLines("addition/heldout", 120, "problems")
    for n in [16] * 7 + [8]:  # accuracy's batches of 16 over 120 problems
        bar.update(n)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines] == [f"addition/heldout: {k}/120 problems" for k in (32, 64, 96, 120)]
    assert lines[-1].endswith("done") and all(line.endswith("s to go") for line in lines[:-1])
