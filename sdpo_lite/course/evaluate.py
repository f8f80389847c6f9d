"""Accuracy on a task split: the before/after number every notebook reports.

Greedy decoding, so the number is a property of the model and not of a sampling seed; batched with
left padding, so a whole held-out split takes seconds on a GPU and about a minute for SmolLM2 on CPU.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sdpo_lite.course.tasks import TASKS, load_task

__all__ = ["EvalResult", "accuracy", "generate_greedy", "record_result"]


@dataclass
class EvalResult:
    """Accuracy plus every example, so a notebook can show what the model actually wrote.

    ``examples`` holds ``(prompt, completion, expected, ok)`` tuples in the split's order.
    """

    accuracy: float
    n: int
    correct: int
    examples: list[tuple[str, str, Any, bool]] = field(default_factory=list, repr=False)
    task: str = ""
    split: str = ""

    def __str__(self) -> str:
        where = f"{self.task}/{self.split}: " if self.task else ""
        return f"{where}{self.correct}/{self.n} correct = {self.accuracy:.1%}"


def generate_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int = 24) -> list[str]:
    """Greedy completions for a batch of user prompts, each wrapped in the model's chat template.

    Left padding keeps every prompt's last token next to the first generated one, which is what a
    decoder-only model needs when prompts of different lengths share a batch.
    """
    from transformers import GenerationConfig

    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        # The template already wrote every special token it wants; don't let the tokenizer add more.
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    batch = batch.to(model.device)
    pad_id = model.generation_config.pad_token_id
    config = GenerationConfig(  # fresh, so sampling settings shipped with a checkpoint can't leak in
        do_sample=False,
        max_new_tokens=max_new_tokens,
        eos_token_id=model.generation_config.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if pad_id is None else pad_id,
    )
    output = model.generate(**batch, generation_config=config)
    new_tokens = output[:, batch["input_ids"].shape[1]:]
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


def time_so_far(elapsed: float, done: int, total: int) -> str:
    """`41 s, about 82 s to go` (the pace so far, extrapolated) or `41 s, done`: the tail of a progress line."""
    if done >= total:
        return f"{elapsed:.0f} s, done"
    return f"{elapsed:.0f} s, about {elapsed / max(done, 1) * (total - done):.0f} s to go"


class ProgressLines:
    """Progress as a few printed lines: `addition/heldout: 64/120 problems, 12 s, about 10 s to go`.

    Printed at each quarter and at the end, so the saved output reads the same in Jupyter, Colab, Kaggle and a
    notebook rendered on GitHub (where a progress-bar widget saved by an executed notebook shows "0/120")."""

    def __init__(self, label: str, total: int, unit: str):
        self.label, self.total, self.unit, self.done = label, total, unit, 0
        self.start, self.quarter = time.perf_counter(), 0

    def update(self, n: int) -> None:
        self.done += n
        quarter = 4 * self.done // max(self.total, 1)
        if quarter <= self.quarter and self.done < self.total:
            return
        self.quarter = quarter
        elapsed = time_so_far(time.perf_counter() - self.start, self.done, self.total)
        print(f"{self.label}: {self.done}/{self.total} {self.unit}, {elapsed}", flush=True)


def accuracy(
    model,
    tokenizer,
    task: str = "addition",
    split: str = "heldout",
    max_new_tokens: int = 24,
    batch_size: int = 16,
    limit: int | None = None,
    progress: bool = True,
    data_dir: str | os.PathLike | None = None,
) -> EvalResult:
    """Greedy accuracy of ``model`` on ``task``/``split``, judged by the task's registered checker.

    The model is put in eval mode (no dropout) for the measurement and then returned to whatever mode
    it was in, so this can be called in the middle of training.
    """
    spec = TASKS[task] if task in TASKS else None
    if spec is None or spec.checker is None:
        raise ValueError(f"task {task!r} has no registered answer checker")
    rows = list(load_task(task, split, data_dir))[:limit]
    examples: list[tuple[str, str, Any, bool]] = []
    was_training = model.training
    model.eval()
    try:
        bar = ProgressLines(f"{task}/{split}", len(rows), "problems") if progress else None
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                chunk = rows[start:start + batch_size]
                completions = generate_greedy(model, tokenizer, [r["prompt"] for r in chunk], max_new_tokens)
                for row, completion in zip(chunk, completions):
                    expected = row if spec.answer_field is None else row[spec.answer_field]
                    examples.append((row["prompt"], completion, expected, bool(spec.checker(completion, expected))))
                if bar:
                    bar.update(len(chunk))
    finally:
        model.train(was_training)
    correct = sum(ok for *_, ok in examples)
    n = len(examples)
    return EvalResult(correct / n if n else 0.0, n, correct, examples, task, split)


def record_result(key: str, value: Any) -> None:
    """Print ``key = value`` and, when ``$SDPO_RESULTS`` names a JSON file, store it there too.

    ``scripts/run_notebooks.py`` points ``SDPO_RESULTS`` at one file per notebook and prints the
    collected numbers in its summary. The file is a flat ``{key: value}`` object; a key recorded twice
    keeps its last value.
    """
    print(f"{key} = {value}")
    target = os.environ.get("SDPO_RESULTS")
    if not target:
        return
    path = Path(target)
    try:
        results = json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        results = {}  # a half-written file from a crashed run: start over rather than fail the notebook
    results[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
