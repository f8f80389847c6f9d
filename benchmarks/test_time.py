#!/usr/bin/env python3
"""Test-time SDPO on hard questions: discovery probability against attempts (notebook 04, at a larger scale).

    .venv/bin/python benchmarks/test_time.py select                 # measure pass@1, write data/addition_hard
    .venv/bin/python benchmarks/test_time.py run --seeds 0 1         # the three methods; one JSON line per search
    .venv/bin/python benchmarks/test_time.py run --methods "test-time SDPO" --lr 1e-4   # one method, another step
    .venv/bin/python benchmarks/test_time.py report                 # curves, ratios, figure from the saved lines

`select` samples every held-out two-digit addition question 32 times (temperature 1, the notebook's 16-token
budget) from the untrained SmolLM2-135M and keeps the questions it answers correctly 1 to 3 times in 32 (pass@1 of
3-9%) and never greedily: hard, but not impossible. Those samples only choose the questions; every method then
draws its own attempts, so a question that was lucky during selection does not flatter any method.

`run` searches each hard question with best-of-k (n samples), multi-turn retry and test-time SDPO (sdpo_lite.
course.discovery), with feedback that never contains the answer: "too high" / "too low", "cut off", "no number".
Each search is appended to benchmarks/results/test_time.jsonl (a later line wins for the same method, question,
seed and learning rate). `report` prints each method's discovery probability at several k with 95% intervals
(questions resampled) and the attempts ratio to best-of-k at equal discovery probability.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from summarise import append_jsonl, commit, read_jsonl  # noqa: E402  (the JSON-lines log regimes.py also keeps)

RESULTS = ROOT / "benchmarks" / "results" / "test_time.jsonl"
SELECTION = ROOT / "benchmarks" / "results" / "test_time_selection.json"
FIGURE = ROOT / "docs" / "images" / "test_time_discovery.png"
HARD_TASK = "addition_hard"
SETTINGS = dict(model="smollm2-135m", tokens=16, temperature=1.0, group=8)  # the notebook's
METHODS = {"best-of-k": "bok", "multi-turn": "multi", "test-time SDPO": "sdpo"}


def command_select(args) -> None:
    from sdpo_lite.course.evaluate import accuracy
    from sdpo_lite.course.models import load_model
    from sdpo_lite.course.rewards import make_addition_format_reward
    from sdpo_lite.course.rollouts import sample_completions
    from sdpo_lite.course.tasks import load_task, task_path, write_splits

    model, tok = load_model(SETTINGS["model"], verbose=False)
    rows = list(load_task("addition", "heldout"))
    greedy = accuracy(model, tok, "addition", "heldout", max_new_tokens=SETTINGS["tokens"], progress=False)
    reward = make_addition_format_reward(SETTINGS["tokens"])
    measured = []
    for start in range(0, len(rows), args.batch):  # several questions per generate call: faster on a CPU
        chunk = rows[start:start + args.batch]
        chats = [[{"role": "user", "content": r["prompt"]}] for r in chunk]
        texts, ids = sample_completions(model, tok, chats, n=args.n, max_new_tokens=SETTINGS["tokens"],
                                        temperature=SETTINGS["temperature"], seed=start)
        for j, row in enumerate(chunk):
            part = slice(j * args.n, (j + 1) * args.n)
            scores = reward([chats[j]] * args.n, texts[part], expected=[row["expected"]] * args.n,
                            completion_ids=ids[part])
            measured.append({"uid": row["uid"], "successes": int(sum(s["score"] for s in scores)), "n": args.n,
                             "greedy_correct": greedy.examples[start + j][3]})
        print(f"{start + len(chunk)}/{len(rows)} questions sampled", flush=True)
    hard = [m for m in measured if 1 <= m["successes"] <= 3 and not m["greedy_correct"]][:args.keep]
    by_uid = {r["uid"]: r for r in rows}
    write_splits(task_path(HARD_TASK, "heldout").parent,
                 {"heldout": [{**by_uid[m["uid"]], "selection_pass_at_1": round(m["successes"] / m["n"], 4)}
                              for m in hard]})
    SELECTION.write_text(json.dumps({"settings": SETTINGS, "n": args.n, "date": datetime.date.today().isoformat(),
                                     "commit": commit(), "questions": measured}, indent=1) + "\n")
    mean = sum(m["successes"] for m in measured) / (args.n * len(measured))
    print(f"mean pass@1 over {len(measured)} held-out questions: {mean:.1%}; kept {len(hard)} hard ones "
          f"({sum(1 <= m['successes'] <= 3 for m in measured)} qualified); raw counts in {SELECTION}")


def hard_rows(limit: int | None = None) -> list[dict]:
    from sdpo_lite.course.tasks import load_task

    return list(load_task(HARD_TASK, "heldout"))[:limit]


def _key(row: dict) -> tuple:
    return row["method"], row["question"], row["seed"], row.get("lr")


def load(path: Path) -> dict:
    """(method, question, seed, lr) -> the latest saved search."""
    return read_jsonl(path, _key)


def save(search, path: Path, **extra) -> dict:
    return append_jsonl({**search.to_json(), **extra, **{k: v for k, v in SETTINGS.items() if k != "group"}}, path)


def command_run(args) -> None:
    from sdpo_lite.course import discovery
    from sdpo_lite.course.models import load_model
    from sdpo_lite.course.recipes import choose_profile
    from sdpo_lite.course.rewards import make_addition_format_reward

    rows, saved = hard_rows(args.questions), load(args.results)
    reward = make_addition_format_reward(SETTINGS["tokens"], wrong="direction")
    profile = choose_profile("cpu", max_completion_length=SETTINGS["tokens"], num_generations=SETTINGS["group"],
                             temperature=SETTINGS["temperature"])
    model = tok = None
    for seed in args.seeds:
        for method in args.methods:
            lr = args.lr if method == "test-time SDPO" else None
            todo = [r for r in rows if args.again or (method, r["uid"], _seed(method, seed, 0), lr) not in saved]
            if not todo:
                continue
            if method != "test-time SDPO" and model is None:
                model, tok = load_model(SETTINGS["model"], verbose=False)
            if method == "best-of-k":
                searches = [discovery.best_of_k(model, tok, r, reward, n=args.bok_n, max_new_tokens=SETTINGS["tokens"],
                                                temperature=SETTINGS["temperature"], seed=seed) for r in todo]
            elif method == "multi-turn":
                searches = discovery.multi_turn(model, tok, todo, reward, chains=args.chains, attempts=args.attempts,
                                                max_new_tokens=SETTINGS["tokens"], window=args.window,
                                                temperature=SETTINGS["temperature"], seed=seed)
            else:
                searches = [discovery.sdpo_at_test_time(r, reward, profile, attempts=args.attempts, learning_rate=lr,
                                                     seed=seed, gradient_checkpointing=False) for r in todo]
            for search in searches:
                window = args.window if method == "multi-turn" else None
                saved[_key(save(search, args.results, lr=lr, window=window))] = True
            found = sum(s.solved for s in searches)
            print(f"{method:14s} seed {seed}{f' lr {lr:g}' if lr else ''}: {found}/{len(searches)} searches found an "
                  f"answer, {sum(s.seconds for s in searches):.0f} s", flush=True)


def _seed(method: str, seed: int, chain: int) -> int:
    """The seed a search is saved under: multi-turn runs `chains` searches per seed (seed * 1000 + chain)."""
    return seed * 1000 + chain if method == "multi-turn" else seed


def searches_of(rows: dict, lr: float | None):
    """Saved rows as Search objects: SDPO at learning rate `lr` (the latest saved one if None), the others as is."""
    from sdpo_lite.course.discovery import Search

    rates = sorted({r["lr"] for r in rows.values() if r["method"] == "test-time SDPO"})
    lr = lr if lr is not None else (rates[-1] if rates else None)
    chosen = [r for r in rows.values() if r["method"] != "test-time SDPO" or r["lr"] == lr]
    return [Search(r["method"], r["question"], r["seed"], r["batches"], r["attempts"], r["feedback"], r["seconds"])
            for r in chosen], lr, rates


def command_report(args) -> None:
    from sdpo_lite.course.discovery import discovery_curves, versus

    searches, lr, rates = searches_of(load(args.results), args.lr)
    if not searches:
        print(f"no searches saved in {args.results}: run `benchmarks/test_time.py run` first")
        return
    unsolved = [s.n_attempts for s in searches if not s.solved]
    budget = min(unsolved) if unsolved else args.attempts  # every method searched at least this far
    ks = list(range(1, budget + 1))
    curves = discovery_curves(searches, ks)
    print(f"test-time SDPO at lr {lr:g} (saved rates: {', '.join(f'{r:g}' for r in rates)}); 95% intervals from "
          "resampling questions")
    shown = [k for k in (1, 4, 8, 16, 24, 32, 48) if k <= budget]
    print("| method | questions | searches | " + " | ".join(f"found within {k}" for k in shown) + " |")
    print("|---|---|---|" + "---|" * len(shown))
    for method, curve in curves.items():
        n = sum(s.method == method for s in searches)
        cells = [f"{curve['mean'][k - 1]:.0%} [{curve['low'][k - 1]:.0%}, {curve['high'][k - 1]:.0%}]" for k in shown]
        print(f"| {method} | {curve['questions']} | {n} | " + " | ".join(cells) + " |")
    for method in ("test-time SDPO", "multi-turn"):
        if method in curves and "best-of-k" in curves:
            print("\n".join(versus(searches, curves, ks, method)[0]))
    from sdpo_lite.course.reports import plot_discovery

    fig = plot_discovery(curves, ks, title=f"Hard addition questions, SmolLM2-135M (SDPO lr {lr:g})")
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=110)
    print(f"figure: {args.figure}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    select = sub.add_parser("select", help="measure pass@1 per held-out question; write data/addition_hard")
    select.add_argument("--n", type=int, default=32, help="samples per question")
    select.add_argument("--batch", type=int, default=4, help="questions per generate call")
    select.add_argument("--keep", type=int, default=12, help="hard questions to keep (in held-out order)")
    run = sub.add_parser("run", help="search the hard questions; one JSON line per search")
    run.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    run.add_argument("--seeds", nargs="+", type=int, default=[0])
    run.add_argument("--questions", type=int, help="only the first N hard questions")
    from sdpo_lite.course.discovery import BUDGETS

    notebook = BUDGETS["cpu"]  # the defaults are notebook 04's
    run.add_argument("--attempts", type=int, default=notebook.attempts, help="attempts per search (SDPO: a multiple "
                     "of 8)")
    run.add_argument("--bok-n", type=int, default=notebook.best_of_n, help="best-of-k samples per question")
    run.add_argument("--chains", type=int, default=notebook.chains, help="multi-turn conversations per question and "
                     "seed")
    run.add_argument("--window", type=int, default=notebook.window, help="multi-turn: exchanges kept in the chat")
    run.add_argument("--lr", type=float, default=notebook.learning_rate, help="test-time SDPO's learning rate")
    run.add_argument("--again", action="store_true", help="rerun even where a search is saved")
    report = sub.add_parser("report", help="curves, ratios and the figure from the saved searches")
    report.add_argument("--lr", type=float, help="which SDPO learning rate to report (default: the largest saved)")
    report.add_argument("--attempts", type=int, default=24, help="the budget, when every search found an answer")
    report.add_argument("--figure", type=Path, default=FIGURE)
    for parser in (run, report):
        parser.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    {"select": command_select, "run": command_run, "report": command_report}[args.command](args)


if __name__ == "__main__":
    main()
