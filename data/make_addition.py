"""Generate the addition tasks' JSONL files (run once; the output is committed, not regenerated).

    python data/make_addition.py

`addition`: two-digit addition, a + b with 10 <= a, b <= 99 (the course's task). `addition3`: the same with
three-digit operands, 100 <= a, b <= 999: a sparser reward for the same model (benchmarks/regimes.py).
Train and held-out are disjoint as *unordered* pairs, so "23 + 45" in train never leaks "45 + 23" into held-out.
The seed is fixed: rerunning writes byte-identical files (tests/test_data.py checks that the committed files
match this script).
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sdpo_lite.course.tasks import render_jsonl as render, write_splits  # noqa: E402,F401 (render: the tests compare with it)

SEED = 2026
N_TRAIN = 50
N_HELDOUT = 120
PROMPT = "What is {a} + {b}? Answer with just the number."


TASKS = {"addition": 2, "addition3": 3}  # task name -> digits per operand


def make_splits(seed: int = SEED, digits: int = 2, task: str = "addition") -> dict[str, list[dict]]:
    """Draw N_TRAIN + N_HELDOUT distinct unordered pairs of `digits`-digit numbers and split them."""
    low, high = 10 ** (digits - 1), 10 ** digits - 1
    rng = random.Random(seed)
    seen: set[tuple[int, int]] = set()
    pairs: list[tuple[int, int]] = []
    while len(pairs) < N_TRAIN + N_HELDOUT:
        a, b = rng.randint(low, high), rng.randint(low, high)
        key = (min(a, b), max(a, b))
        if key in seen:
            continue
        seen.add(key)
        pairs.append((a, b))
    splits = {"train": pairs[:N_TRAIN], "heldout": pairs[N_TRAIN:]}
    return {
        split: [
            {"uid": f"{task}-{split}-{i:03d}", "prompt": PROMPT.format(a=a, b=b), "expected": a + b}
            for i, (a, b) in enumerate(rows)
        ]
        for split, rows in splits.items()
    }


def main() -> None:
    for task, digits in TASKS.items():
        write_splits(Path(__file__).resolve().parent / task, make_splits(digits=digits, task=task))


if __name__ == "__main__":
    main()
