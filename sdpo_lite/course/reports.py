"""Reports of finished runs: the results table, rollouts as text, the comparison plot, the data-flow figure.

Everything here reads `RunResult`s (`recipes.train_run`) or RolloutRecords; nothing trains.
"""
from __future__ import annotations

import inspect
import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdpo_lite.course.recipes import RunResult


def summarise_runs(runs: list[RunResult], before: float | None = None) -> None:
    """Print each run's numbers (and record them for `make run`'s summary): accuracy, success, teacher coverage."""
    from sdpo_lite.course.evaluate import record_result

    print(f"{'run':24} {'held-out':>9} {'train success':>14} {'truncated':>10} {'with teacher':>13} {'with demo':>10} "
          f"{'minutes':>8}")
    for run in runs:
        mean = lambda key: sum(run.series(key)) / max(len(run.history), 1)  # noqa: E731
        last5 = lambda key: sum(run.series(key)[-5:]) / max(len(run.series(key)[-5:]), 1)  # noqa: E731
        coverage = lambda key: f"{mean(key):.0%}" if run.sdpo_enabled else "-"  # noqa: E731 (GRPO: none)
        print(f"{run.label:24} {run.accuracy:>9.1%} {last5('reward'):>14.2f} {last5('completions/clipped_ratio'):>10.0%} "
              f"{coverage('sdpo/frac_with_teacher'):>13} {coverage('sdpo/frac_with_demo'):>10} {run.seconds / 60:>8.1f}")
    if before is not None:
        print(f"held-out accuracy before training: {before:.1%}; train success and truncated (completions that hit "
              "the token limit) = mean of the last 5 steps, sampled at temperature 1")
    for run in runs:  # after the table, so the `key = value` lines a benchmark reads do not break it up
        record_result(f"heldout_after_{run.key}", round(run.accuracy, 4))


def print_rollouts(records, limit: int = 3, width: int = 400) -> None:
    """Print rollouts of one step: completion, score, feedback and (shortened) the prompt the teacher read."""
    for i, r in enumerate(records[:limit]):
        print(f"--- rollout {i} (group {r.group}) score {r.score} [{r.teacher_kind}]")
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
    names = ["before"] + [textwrap.fill(r.label, 14) for r in runs]  # long labels wrap under their bars
    values = [before if before is not None else float("nan")] + [r.accuracy for r in runs]
    colors = COLOURS[:len(names)]
    bars = right.bar(names, values, color=colors)
    for bar, v in zip(bars, values):
        right.text(bar.get_x() + bar.get_width() / 2, v + 0.01, f"{v:.0%}", ha="center", va="bottom")
    right.set(ylabel="held-out accuracy", ylim=(0, 1.05), title="Held-out accuracy")  # the whole scale: 1 task is small
    fig.tight_layout()
    return fig


def print_before_after(before, runs: list[RunResult], limit: int = 6, width: int = 60) -> None:
    """The same held-out problems before training and after each run: what each method changed in the answers.

    `before` is the untrained model's `EvalResult`. Problems where the outcomes differ come first (those are the
    ones that show a change), then the rest in order, `limit` in all."""
    outcomes = [[ok for *_, ok in before.examples]] + [[ok for *_, ok in run.examples] for run in runs]
    if any(len(o) != len(outcomes[0]) for o in outcomes):
        raise ValueError("every run must have been evaluated on the same held-out problems as `before`")
    differ = [i for i in range(len(outcomes[0])) if len({o[i] for o in outcomes}) > 1]
    chosen = (differ + [i for i in range(len(outcomes[0])) if i not in differ])[:limit]
    labels = ["before"] + [run.label for run in runs]
    pad = max(map(len, labels))
    for i in chosen:
        prompt, _, expected, _ = before.examples[i]
        print(f"{prompt}  (expected {expected})")
        for label, result in zip(labels, [before.examples] + [run.examples for run in runs]):
            completion, ok = result[i][1], result[i][3]
            text = completion if len(completion) <= width else completion[:width - 3] + "..."
            print(f"  {label:<{pad}}  {'right' if ok else 'wrong'}  {text!r}")


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
    ax.set(xlim=(-0.02, 0.82), ylim=(0.05, 1.0))  # room for the first box's rounded edge
    return fig


def plot_discovery(curves: dict, ks: list[int], *, title: str = "Discovery on hard questions", ax=None):
    """P(a correct answer within k attempts) per method (`discovery.discovery_curves`), with its 95% band."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    for i, (method, curve) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        n = len(curve["mean"])
        ax.plot(ks[:n], curve["mean"], lw=2, color=colour, label=f"{method} ({curve['questions']} questions)")
        ax.fill_between(ks[:n], curve["low"], curve["high"], color=colour, alpha=0.18, lw=0)
    ax.set(xlabel="attempts k", ylabel="P(correct answer within k attempts)", ylim=(0, 1), xlim=(0, max(ks)),
           title=title)
    ax.legend(frameon=False, loc="upper left")
    ax.figure.tight_layout()
    return ax.figure


def show_source(obj, first: str | None = None, last: str | None = None) -> None:
    """Print the source of a function, or only its lines from the one containing `first` to the one containing
    `last`: the package code behind an equation, read where it runs (TRL's included)."""
    lines = inspect.getsource(obj).splitlines()
    start = 0 if first is None else next(i for i, line in enumerate(lines) if first in line)
    end = len(lines) - 1 if last is None else next(i for i, line in enumerate(lines) if last in line and i >= start)
    where = f"{obj.__module__}.{obj.__qualname__}"
    print(f"# {where}" + ("" if first is None and last is None else f" (its lines {start + 1}-{end + 1})"))
    indent = min(len(line) - len(line.lstrip()) for line in lines[start:end + 1] if line.strip())
    print("\n".join(line[indent:] for line in lines[start:end + 1]))
