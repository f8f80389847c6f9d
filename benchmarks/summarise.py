#!/usr/bin/env python3
"""Tables with 95% confidence intervals from the raw JSON that `benchmarks/compare.py --json` saves.

    python benchmarks/summarise.py benchmarks/results/addition_*.json
    python benchmarks/summarise.py benchmarks/results/addition_*.json --baseline grpo

Per method (and learning rate): held-out accuracy after training, mean over seeds with a t-interval. With
--baseline, also the paired difference to that method on the seeds both ran (same seed = same data order and
sampling start, so pairing removes much of the seed-to-seed noise). An interval that contains 0 means "no measurable
difference" at this number of seeds. Standard library only.
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent

# Two-sided 95% quantiles of Student's t, by degrees of freedom (n - 1 seeds).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t975(df: int) -> float:
    return T975.get(df) or T975[max(k for k in T975 if k <= df)]


def interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval); half-width NaN for a single value."""
    mean = statistics.mean(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, t975(len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5


def commit() -> str:
    """The checkout's short commit hash, saved with every result ("unknown" outside git)."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def append_jsonl(row: dict, path: Path) -> dict:
    """Append one run to a JSON-lines log, stamped with today's date and the commit that produced it."""
    row = {**row, "date": datetime.date.today().isoformat(), "commit": commit()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    return row


def read_jsonl(path: Path, key: Callable[[dict], tuple]) -> dict:
    """key(row) -> the latest row with that key (a rerun appends a line that replaces the earlier one)."""
    rows = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[key(row)] = row
    return rows


def load_rows(paths) -> dict[tuple[str, float], dict[int, float]]:
    """(method, lr) -> {seed: held-out accuracy after}; a later file wins for a repeated (method, lr, seed)."""
    runs: dict[tuple[str, float], dict[int, float]] = {}
    for path in paths:
        for row in json.loads(Path(path).read_text())["rows"]:
            runs.setdefault((row["method"], row["lr"]), {})[row["seed"]] = row["after"]
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--baseline", help="method to pair the others with, e.g. grpo")
    a = ap.parse_args()
    runs = load_rows(a.files)
    print("| method | lr | seeds | held-out after, per seed | mean [95% CI] |")
    print("|---|---|---|---|---|")
    for (method, lr), by_seed in sorted(runs.items()):
        mean, half = interval(list(by_seed.values()))
        per_seed = " / ".join(f"{by_seed[s]:.1%}" for s in sorted(by_seed))
        print(f"| {method} | {lr:g} | {', '.join(map(str, sorted(by_seed)))} | {per_seed} | "
              f"{mean:.1%} [{mean - half:.1%}, {mean + half:.1%}] |")
    if not a.baseline:
        return
    base = {s: v for (m, _), d in runs.items() if m == a.baseline for s, v in d.items()}
    print(f"\n| method - {a.baseline} (paired by seed) | seeds | mean difference [95% CI] | verdict |")
    print("|---|---|---|---|")
    for (method, lr), by_seed in sorted(runs.items()):
        seeds = sorted(set(by_seed) & set(base))
        if method == a.baseline or len(seeds) < 2:
            continue
        mean, half = interval([by_seed[s] - base[s] for s in seeds])
        verdict = "no measurable difference" if mean - half <= 0 <= mean + half else (
            "higher" if mean > 0 else "lower")
        print(f"| {method} (lr {lr:g}) | {', '.join(map(str, seeds))} | {mean * 100:+.1f} points "
              f"[{(mean - half) * 100:+.1f}, {(mean + half) * 100:+.1f}] | {verdict} |")


if __name__ == "__main__":
    main()
