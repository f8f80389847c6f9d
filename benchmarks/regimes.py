#!/usr/bin/env python3
"""When does SDPO beat GRPO? A regime map at laptop scale: one factor at a time from notebook 01's setting.

    .venv/bin/python benchmarks/regimes.py list                                   # the cells and the rows saved
    .venv/bin/python benchmarks/regimes.py run --cells base tokens32 --seeds 0 1  # train; one JSON line per run
    .venv/bin/python benchmarks/regimes.py run --all --seeds 0 1                  # every cell (a screen: hours)
    .venv/bin/python benchmarks/regimes.py report                                 # table + figure from saved rows

The base cell is notebook 01: two-digit addition, SmolLM2-135M (the cpu profile: 24 steps x 1 prompt x 8
generations, 16 tokens, temperature 1), learning rate 1e-5 for every method, rich feedback ("Wrong: 23 + 45 = 68,
you wrote 67"), SDPOConfig's defaults (alpha 0.5, top-100 + tail, EMA teacher tau 0.05), the blend at lambda 0.9.
Every other cell changes one thing (CELLS). Methods: grpo, sdpo, blend. Where a cell's change cannot touch GRPO
(feedback, teacher, alpha, top-k), its GRPO runs are the base cell's: GRPO never reads feedback or a teacher.

Each run appends one JSON line to benchmarks/results/regimes.jsonl (a later line wins for the same cell, method
and seed): held-out accuracy before and after (120 problems, greedy), per-step training success, truncation and
teacher coverage, the wall time at the end of each step, the commit. `report` reads only that file: per cell and
method the mean over seeds with a 95% t-interval, and the paired difference to GRPO on the seeds both ran
(same seed = same data order and sampling start); an interval containing 0 is "no measurable difference".
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from summarise import append_jsonl, interval, read_jsonl  # noqa: E402  (the README's 95% t-interval)

RESULTS = ROOT / "benchmarks" / "results" / "regimes.jsonl"
FIGURE = ROOT / "docs" / "images" / "regime_map.png"
METHODS = ("grpo", "sdpo", "blend")
BLEND_WEIGHT = 0.9  # notebook 01's lambda


@dataclass(frozen=True)
class Cell:
    """One point of the map: what it changes from the base, and whether GRPO can see the change."""

    factor: str
    level: str
    task: str = "addition"
    profile: dict = field(default_factory=dict)  # Profile overrides (the completion budget, the learning rate)
    sdpo: dict = field(default_factory=dict)  # SDPOConfig overrides for sdpo and blend
    feedback: str = "rich"  # rich | plain | reply | format | sum-format | none (peers only)
    grpo_sees_it: bool = False  # False: this cell's GRPO rows are the base cell's

    def grpo_cell(self, name: str) -> str:
        return name if self.grpo_sees_it else "base"


CELLS = {
    "base": Cell("base", "notebook 01", grpo_sees_it=True),
    # reward sparsity: three-digit operands (GRPO's all-fail groups carry no signal; feedback still teaches)
    "digits3": Cell("difficulty", "3-digit operands", task="addition3", grpo_sees_it=True),
    # the completion budget: at 16 tokens most replies are cut off
    # (held-out answers get the same budget, so a longer reply is not cut off at evaluation either)
    "tokens32": Cell("budget", "32 tokens", profile={"max_completion_length": 32, "eval_tokens": 32},
                     grpo_sees_it=True),
    "tokens64": Cell("budget", "64 tokens", profile={"max_completion_length": 64, "eval_tokens": 64},
                     grpo_sees_it=True),
    # what the feedback carries
    "fb-none": Cell("feedback", "none: peers only", feedback="none"),
    "fb-plain": Cell("feedback", '"Wrong."', feedback="plain"),
    "fb-format": Cell("feedback", "format/truncation, no sum (official kind)", feedback="format"),
    "fb-reply": Cell("feedback", "the sum + a model reply", feedback="reply"),
    "fb-sum-format": Cell("feedback", "the sum + format/truncation", feedback="sum-format"),
    # the teacher and the divergence
    "frozen": Cell("teacher", "frozen initial model", sdpo={"teacher_mode": "frozen"}),
    "ema0.01": Cell("teacher", "EMA tau 0.01", sdpo={"ema_tau": 0.01}),
    "alpha0": Cell("alpha", "0: forward KL", sdpo={"alpha": 0.0}),
    "alpha1": Cell("alpha", "1: reverse KL", sdpo={"alpha": 1.0}),
    "topk20": Cell("top-k", "20 + tail", sdpo={"distillation_topk": 20}),
    "fullvocab": Cell("top-k", "full vocabulary", sdpo={"distillation_topk": None}),
    # the step size
    "lr3e-5": Cell("learning rate", "3e-5", profile={"learning_rate": 3e-5}, grpo_sees_it=True),
}


# ----------------------------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------------------------
def reward_for(cell: Cell, profile):
    from sdpo_lite.course import rewards

    if cell.feedback in ("format", "sum-format"):
        return rewards.make_addition_format_reward(max_tokens=profile.max_completion_length,
                                                   wrong="sum" if cell.feedback == "sum-format" else "plain")
    return {"rich": rewards.addition_reward_rich, "plain": rewards.addition_reward,
            "reply": rewards.addition_reward_reply, "none": rewards.addition_reward_rich}[cell.feedback]


def sdpo_config(cell: Cell, method: str):
    from sdpo_lite import SDPOConfig

    if method == "grpo":
        return SDPOConfig(enabled=False)
    blend = {"grpo_weight": BLEND_WEIGHT} if method == "blend" else {}
    return SDPOConfig(include_feedback=cell.feedback != "none", **cell.sdpo, **blend)


def profile_for(cell: Cell, args):
    """The notebook's cpu profile with the cell's change; one learning rate for every method (the cell's)."""
    from sdpo_lite.course.recipes import choose_profile

    overrides = dict(cell.profile)
    if "learning_rate" in overrides:
        overrides["sdpo_learning_rate"] = overrides["learning_rate"]
    if args.steps:
        overrides["steps"] = args.steps
    return choose_profile(args.profile, task=cell.task, **overrides)


def before_key(task: str, eval_tokens: int) -> tuple:
    return ("before", f"{task}@{eval_tokens}", 0)


def held_out_before(task: str, profile, rows: dict, path: Path) -> float:
    """The untrained model's held-out accuracy on `task` with the profile's answer budget (greedy: no seed),
    measured once per (task, budget) and saved."""
    key = before_key(task, profile.eval_tokens)
    if key not in rows:
        from sdpo_lite.course.evaluate import accuracy
        from sdpo_lite.course.models import load_model

        model, tok = load_model(profile.model_name, verbose=False)
        acc = accuracy(model, tok, task, "heldout", max_new_tokens=profile.eval_tokens, limit=profile.eval_limit,
                       progress=False).accuracy
        rows[key] = save({"kind": "before", "cell": "before", "task": task, "eval_tokens": profile.eval_tokens,
                          "method": "before", "seed": 0, "after": acc, "profile": profile.name}, path)
    return rows[key]["after"]


def run_one(name: str, method: str, seed: int, args) -> dict:
    from sdpo_lite.course.recipes import train_run

    cell = CELLS[name]
    profile = profile_for(cell, args)
    lr = profile.learning_rate if method == "grpo" else profile.sdpo_learning_rate
    run = train_run(f"{name}/{method}", profile, reward_for(cell, profile), sdpo=sdpo_config(cell, method),
                    task=cell.task, seed=seed, learning_rate=lr, disable_tqdm=True, log_every=None,
                    output_dir=f"/tmp/sdpo_regimes/{name}-{method}-{seed}")
    return {"kind": "run", "cell": name, "factor": cell.factor, "level": cell.level, "task": cell.task,
            "method": method, "seed": seed, "profile": profile.name, "lr": lr, "steps": profile.steps,
            "max_completion_length": profile.max_completion_length, "eval_tokens": profile.eval_tokens,
            "after": run.accuracy,
            "success": run.series("reward"), "truncated": run.series("completions/clipped_ratio"),
            "with_teacher": run.series("sdpo/frac_with_teacher") if run.sdpo_enabled else [],
            "step_seconds": [round(s, 2) for s in run.step_seconds], "seconds": round(run.seconds, 1)}


def save(row: dict, path: Path) -> dict:
    return append_jsonl(row, path)


def load(path: Path) -> dict:
    """(cell, method, seed) -> the latest row; `before_key(task, eval_tokens)` -> the untrained model's accuracy."""
    return read_jsonl(path, lambda row: before_key(row["task"], row["eval_tokens"]) if row["kind"] == "before" else
                      (row["cell"], row["method"], row["seed"]))


def planned(cells, methods, seeds) -> list[tuple[str, str, int]]:
    """The runs a command asks for, GRPO runs of cells that GRPO cannot see mapped onto the base cell's."""
    wanted = []
    for name in cells:
        for method in methods:
            target = CELLS[name].grpo_cell(name) if method == "grpo" else name
            wanted += [(target, method, seed) for seed in seeds if (target, method, seed) not in wanted]
    return wanted


def command_run(args) -> None:
    rows = load(args.results)
    todo = [key for key in planned(args.cells, args.methods, args.seeds) if args.again or key not in rows]
    print(f"{len(todo)} run(s) to do (rows saved so far: {sum(r['kind'] == 'run' for r in rows.values())})", flush=True)
    for name, method, seed in todo:
        wait_while(args.pause_file)
        cell = CELLS[name]
        before = held_out_before(cell.task, profile_for(cell, args), rows, args.results)
        t0 = time.perf_counter()
        row = save(run_one(name, method, seed, args), args.results)
        rows[(name, method, seed)] = row
        print(f"{name:10s} {method:5s} seed {seed}: held-out {before:.1%} -> {row['after']:.1%}, success (last 5) "
              f"{statistics.mean(row['success'][-5:]):.2f}, truncated {statistics.mean(row['truncated']):.0%}, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)


def wait_while(pause_file: Path | None) -> None:
    """Hold off the next run while `pause_file` exists: another job can use the two cores between runs without
    slowing a run down (each run's step times are part of its result)."""
    announced = False
    while pause_file is not None and pause_file.exists():
        if not announced:
            print(f"paused: {pause_file} exists", flush=True)
            announced = True
        time.sleep(5)


# ----------------------------------------------------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------------------------------------------------
def paired_difference(rows: dict, name: str, method: str) -> tuple[float, float, int]:
    """Mean and 95% half-width of (method - GRPO) held-out accuracy over the seeds both ran; n seeds."""
    grpo = CELLS[name].grpo_cell(name)
    seeds = sorted(s for (c, m, s) in rows if c == name and m == method and (grpo, "grpo", s) in rows)
    diffs = [rows[(name, method, s)]["after"] - rows[(grpo, "grpo", s)]["after"] for s in seeds]
    if not diffs:
        return float("nan"), float("nan"), 0
    mean, half = interval(diffs)
    return mean, half, len(diffs)


def verdict(mean: float, half: float, n: int) -> str:
    if n < 2 or half != half:  # NaN: one seed says nothing about noise
        return f"{n} seed(s): no interval yet"
    if mean - half > 0:
        return "better than GRPO"
    if mean + half < 0:
        return "worse than GRPO"
    return "no measurable difference"


def table(rows: dict) -> str:
    lines = ["| factor | level | held-out before | GRPO | SDPO | blend (lambda 0.9) | SDPO - GRPO | blend - GRPO "
             "| training s per run (GRPO / SDPO / blend) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, cell in CELLS.items():
        budgets = {r["eval_tokens"] for (c, _, _), r in rows.items() if c == name and r["kind"] == "run"}
        cells = [rows.get(before_key(cell.task, budgets.pop()), {}).get("after") if len(budgets) == 1 else None]
        seconds = []
        for method in METHODS:
            target = cell.grpo_cell(name) if method == "grpo" else name
            runs = [r for (c, m, _), r in rows.items() if c == target and m == method]
            values = [r["after"] for r in runs]
            seconds.append(f"{statistics.mean(r['seconds'] for r in runs):.0f}" if runs else "-")
            if values:
                mean, half = interval(values)
                cells.append(f"{mean:.1%} ± {half:.1%} (n={len(values)})" if half == half else f"{mean:.1%} (n=1)")
            else:
                cells.append("-")
        for method in ("sdpo", "blend"):
            mean, half, n = paired_difference(rows, name, method)
            cells.append("-" if n == 0 else f"{mean:+.1%} ± {half:.1%}: {verdict(mean, half, n)}" if half == half
                         else f"{mean:+.1%} (n=1)")
        before = f"{cells[0]:.1%}" if cells[0] is not None else "-"
        lines.append(f"| {cell.factor} | {cell.level} | {before} | " + " | ".join(cells[1:] + [" / ".join(seconds)])
                     + " |")
    return "\n".join(lines)


def figure(rows: dict, path: Path = FIGURE) -> Path:
    """Left: SDPO - GRPO and blend - GRPO per cell, 95% intervals. Right: the base cell's training success against
    wall time, each seed thin and the mean over seeds bold (equal seconds, not only equal steps: SDPO's step also
    runs the teacher)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in CELLS if any(c == n for (c, _, _) in rows)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.45 * len(names) + 2.2), gridspec_kw={"width_ratios": [3, 2]})
    for offset, method, colour in ((-0.15, "sdpo", "#0072B2"), (0.15, "blend", "#E69F00")):
        for i, name in enumerate(names):
            mean, half, n = paired_difference(rows, name, method)
            if n:
                left.errorbar(100 * mean, i + offset, xerr=100 * half if half == half else None, fmt="o", color=colour,
                              capsize=3, label=f"{method} - GRPO" if i == 0 else None)
    left.axvline(0, color="#333333", lw=1)
    left.set_yticks(range(len(names)), [f"{CELLS[n].factor}: {CELLS[n].level}" for n in names])
    left.set_ylim(len(names) - 0.5, -0.5)  # top to bottom, each cell with room for its two bars
    left.set(xlabel="held-out accuracy minus GRPO's (points; 95% interval over paired seeds)",
             title="Where does the self-teacher help?")
    left.legend(frameon=False, loc="upper right")  # the lower right holds the last cell's points
    for method, colour in zip(METHODS, ("#999999", "#0072B2", "#E69F00")):
        base = [r for (c, m, _), r in sorted(rows.items()) if c == "base" and m == method and r["step_seconds"]]
        for r in base:
            right.plot(r["step_seconds"], r["success"], color=colour, alpha=0.25, lw=0.8)
        if base:  # the mean over seeds at each step, placed at the mean wall time of that step
            steps = range(min(len(r["success"]) for r in base))
            seconds = [statistics.mean(r["step_seconds"][i] for r in base) for i in steps]
            success = [statistics.mean(r["success"][i] for r in base) for i in steps]
            right.plot(seconds, success, color=colour, lw=2.2, label=f"{method} (mean of {len(base)} seeds)")
    right.set(xlabel="training wall time (s, 2 CPU cores)", ylabel="training success rate", ylim=(-0.02, 1.02),
              title="Base cell: success against seconds")
    right.legend(frameon=False, title="thin lines: one seed each", title_fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


TABLE_START, TABLE_END = "<!-- regimes.py report: start -->", "<!-- regimes.py report: end -->"


def write_table(path: Path, text: str) -> None:
    """Replace what stands between the two markers in `path` by `text` (the README quotes the saved runs only)."""
    page = path.read_text()
    if TABLE_START not in page or TABLE_END not in page:
        raise SystemExit(f"{path} has no {TABLE_START!r} ... {TABLE_END!r} markers: add them where the table goes")
    head, rest = page.split(TABLE_START, 1)
    path.write_text(f"{head}{TABLE_START}\n{text}\n{TABLE_END}{rest.split(TABLE_END, 1)[1]}")


def command_report(args) -> None:
    rows = load(args.results)
    print(table(rows))
    if args.readme:
        write_table(args.readme, table(rows))
        print(f"\ntable written into {args.readme}")
    if any(r["kind"] == "run" for r in rows.values()):
        print(f"\nfigure: {figure(rows, args.figure)}")


def command_list(args) -> None:
    rows = load(args.results)
    for name, cell in CELLS.items():
        have = {m: sorted(s for (c, mm, s) in rows if c == (cell.grpo_cell(name) if m == "grpo" else name) and mm == m)
                for m in METHODS}
        print(f"{name:10s} {cell.factor:14s} {cell.level:44s} " + "  ".join(f"{m}: {have[m]}" for m in METHODS))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train the runs not saved yet")
    run.add_argument("--cells", nargs="+", choices=list(CELLS), default=["base"])
    run.add_argument("--all", action="store_true", help="every cell")
    run.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    run.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    run.add_argument("--steps", type=int, help="override the profile's steps (development only)")
    run.add_argument("--profile", default="cpu", help="cpu (the map) | tiny (development only)")
    run.add_argument("--again", action="store_true", help="rerun even where a row is saved")
    run.add_argument("--pause-file", type=Path, help="before each run, wait while this file exists")
    report = sub.add_parser("report", help="the table and the figure, from the saved rows")
    report.add_argument("--figure", type=Path, default=FIGURE)
    report.add_argument("--readme", type=Path, help="also write the table into this file, between the markers "
                        f"{TABLE_START!r} and {TABLE_END!r} (the README's copy)")
    listing = sub.add_parser("list", help="the cells and which runs are saved")
    for parser in (run, report, listing):
        parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON-lines file of runs")
    args = ap.parse_args(argv)
    if args.command == "run":
        args.cells = list(CELLS) if args.all else args.cells
        command_run(args)
    elif args.command == "report":
        command_report(args)
    else:
        command_list(args)


if __name__ == "__main__":
    main()
