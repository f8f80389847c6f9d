#!/usr/bin/env python3
"""SDPO vs GRPO (and their blend, and SDPO without feedback) on a course task, several seeds, one table.

    .venv/bin/python benchmarks/compare.py --seeds 0 1 2              # the README's addition table (CPU, ~1 h)
    .venv/bin/python benchmarks/compare.py --methods sdpo --lr 3e-5 1e-4 --seeds 0   # a learning-rate sweep
    .venv/bin/python benchmarks/compare.py --task code --methods sdpo sdpo-nofeedback --seeds 0 1 2   # notebook 03

Every run starts from the same weights (the profile's model), trains for the same number of steps on the task's
training split, and is scored greedily on the held-out split. Reported per run: held-out accuracy before and
after, the training success rate over the last 5 steps, the first step whose 5-step mean success reaches
--target, the fraction of rollouts that had a teacher, and wall time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def make_method(name: str, a):
    from sdpo_lite import SDPOConfig
    from sdpo_lite.course.rewards import (addition_reward, addition_reward_reply, addition_reward_rich,
                                          code_execution_reward)

    if a.task == "code":  # one reward: the sandboxed tests, with their feedback
        reward = plain = code_execution_reward
    else:
        reward = {"rich": addition_reward_rich, "reply": addition_reward_reply, "plain": addition_reward}[a.reward]
        plain = addition_reward
    if name == "grpo":
        return SDPOConfig(enabled=False), plain
    common = dict(alpha=a.alpha, distillation_topk=a.topk, ema_tau=a.ema, teacher_mode=a.teacher)
    if name == "sdpo":
        return SDPOConfig(**common), reward
    if name == "sdpo-nofeedback":  # teachers only from successful peers
        return SDPOConfig(include_feedback=False, **common), reward
    if name == "blend":
        return SDPOConfig(grpo_weight=a.grpo_weight, **common), reward
    raise ValueError(name)


def first_step_reaching(series, target, window=5):
    for j in range(len(series)):
        chunk = series[max(0, j - window + 1):j + 1]
        if len(chunk) == window and sum(chunk) / window >= target:
            return j + 1
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["addition", "code"], default="addition")
    ap.add_argument("--methods", nargs="+", default=["grpo", "sdpo", "blend"],
                    choices=["grpo", "sdpo", "blend", "sdpo-nofeedback"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--profile", default=None, help="cpu | gpu | tiny (default: from the hardware)")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--lr", nargs="+", type=float, help="learning rates to sweep (default: the profile's)")
    ap.add_argument("--grpo-lr", type=float, help="learning rate for GRPO (default: the profile's)")
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--topk", type=int, default=100)
    ap.add_argument("--ema", type=float, default=0.05)
    ap.add_argument("--teacher", default="ema")
    ap.add_argument("--grpo-weight", "--lam", type=float, default=0.5, help="SDPOConfig.grpo_weight (lambda) of the blend")
    ap.add_argument("--reward", choices=["rich", "reply", "plain"], default="rich")
    ap.add_argument("--target", type=float, default=0.5, help="training success rate for 'steps to reach'")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()

    from sdpo_lite.course.recipes import choose_profile, train_run
    from sdpo_lite.course.evaluate import accuracy
    from sdpo_lite.course.models import load_model

    profile = choose_profile(a.profile, task=a.task, **({"steps": a.steps} if a.steps else {}))
    print(profile.describe(), flush=True)
    model, tok = load_model(profile.model_name)
    before = accuracy(model, tok, a.task, "heldout", max_new_tokens=profile.eval_tokens, limit=profile.eval_limit,
                      progress=False).accuracy
    del model
    print(f"held-out accuracy before training: {before:.1%}", flush=True)
    rows = []
    for method in a.methods:
        lrs = [a.grpo_lr or profile.learning_rate] if method == "grpo" else (a.lr or [profile.learning_rate])
        for lr in lrs:
            for seed in a.seeds:
                sdpo, reward = make_method(method, a)
                t0 = time.perf_counter()
                run = train_run(method, profile, reward, sdpo=sdpo, seed=seed, learning_rate=lr, disable_tqdm=True,
                                task=a.task)
                success = run.series("reward")
                row = {"method": method, "lr": lr, "seed": seed, "before": before, "after": run.accuracy,
                       "train_success_last5": statistics.mean(success[-5:]),
                       "steps_to_target": first_step_reaching(success, a.target),
                       "teacher_fraction": 0.0 if method == "grpo" else statistics.mean(run.series("sdpo/frac_with_teacher") or [0]),
                       "seconds": time.perf_counter() - t0, "success": success}
                rows.append(row)
                print(f"{method:6s} lr {lr:g} seed {seed}: held-out {before:.1%} -> {run.accuracy:.1%}, train success "
                      f"(last 5) {row['train_success_last5']:.2f}, steps to {a.target:.0%}: {row['steps_to_target']}, "
                      f"teacher {row['teacher_fraction']:.0%}, {row['seconds']:.0f} s", flush=True)
                if a.json:
                    a.json.write_text(json.dumps({"args": vars(a) | {"json": str(a.json)}, "profile": profile.describe(),
                                                  "rows": rows}, indent=1))
    print(f"\n{profile.describe()}; task {a.task}; reward: {a.reward if a.task == 'addition' else 'code tests'}; alpha {a.alpha}, top-{a.topk}, EMA {a.ema}, blend lambda {a.grpo_weight}\n")
    print("| method | lr | held-out before | held-out after (mean, min-max over seeds) | train success, last 5 steps "
          f"| steps to {a.target:.0%} train success | rollouts with a teacher |")
    print("|---|---|---|---|---|---|---|")
    for method in a.methods:
        for lr in sorted({r["lr"] for r in rows if r["method"] == method}):
            rs = [r for r in rows if r["method"] == method and r["lr"] == lr]
            after = [r["after"] for r in rs]
            steps = [r["steps_to_target"] for r in rs]
            print(f"| {method} | {lr:g} | {before:.1%} | {statistics.mean(after):.1%} ({min(after):.1%}-{max(after):.1%}) "
                  f"| {statistics.mean(r['train_success_last5'] for r in rs):.2f} | "
                  f"{', '.join('-' if s is None else str(s) for s in steps)} | "
                  f"{statistics.mean(r['teacher_fraction'] for r in rs):.0%} |")


if __name__ == "__main__":
    main()
