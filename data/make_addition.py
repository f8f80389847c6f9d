"""Generate the `addition` task's JSONL files (run once; the output is committed, not regenerated).

    python data/make_addition.py

Two-digit addition, a + b with 10 <= a, b <= 99. Train and held-out are disjoint as *unordered* pairs,
so "23 + 45" in train never leaks "45 + 23" into held-out. The seed is fixed: rerunning writes
byte-identical files (tests/test_data.py checks that the committed files match this script).
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


def make_splits(seed: int = SEED) -> dict[str, list[dict]]:
    """Draw N_TRAIN + N_HELDOUT distinct unordered pairs and split them."""
    rng = random.Random(seed)
    seen: set[tuple[int, int]] = set()
    pairs: list[tuple[int, int]] = []
    while len(pairs) < N_TRAIN + N_HELDOUT:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        key = (min(a, b), max(a, b))
        if key in seen:
            continue
        seen.add(key)
        pairs.append((a, b))
    splits = {"train": pairs[:N_TRAIN], "heldout": pairs[N_TRAIN:]}
    return {
        split: [
            {"uid": f"addition-{split}-{i:03d}", "prompt": PROMPT.format(a=a, b=b), "expected": a + b}
            for i, (a, b) in enumerate(rows)
        ]
        for split, rows in splits.items()
    }


def main() -> None:
    write_splits(Path(__file__).resolve().parent / "addition", make_splits())


if __name__ == "__main__":
    main()
