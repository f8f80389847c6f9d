"""Generate the `parity` task's JSONL files (run once; the output is committed, not regenerated).

    python data/make_parity.py

Even or odd, with the reasoning inside <think></think>: "Is 347 even or odd? ..." -> "odd". Numbers are three-digit
(100-999) and distinct across both splits; each split is half even, half odd, in a shuffled order, so answering
"even" every time scores exactly 50%. The seed is fixed: rerunning writes byte-identical files
(tests/test_parity_task.py checks that the committed files match this script).
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sdpo_lite.course.tasks import render_jsonl as render, write_splits  # noqa: E402,F401 (render: the tests compare with it)

SEED = 2026
N_TRAIN = 64
N_HELDOUT = 100
PROMPT = "Is {n} even or odd? Think inside <think></think>, then answer with one word: even or odd."


def make_splits(seed: int = SEED) -> dict[str, list[dict]]:
    """Draw distinct numbers, half even and half odd per split, and shuffle each split."""
    rng = random.Random(seed)
    evens = rng.sample(range(100, 1000, 2), (N_TRAIN + N_HELDOUT) // 2)
    odds = rng.sample(range(101, 1000, 2), (N_TRAIN + N_HELDOUT) // 2)
    splits = {"train": evens[:N_TRAIN // 2] + odds[:N_TRAIN // 2],
              "heldout": evens[N_TRAIN // 2:] + odds[N_TRAIN // 2:]}
    for numbers in splits.values():
        rng.shuffle(numbers)
    return {
        split: [
            {"uid": f"parity-{split}-{i:03d}", "prompt": PROMPT.format(n=n), "number": n,
             "expected": "even" if n % 2 == 0 else "odd"}
            for i, n in enumerate(numbers)
        ]
        for split, numbers in splits.items()
    }


def main() -> None:
    write_splits(Path(__file__).resolve().parent / "parity", make_splits())


if __name__ == "__main__":
    main()
