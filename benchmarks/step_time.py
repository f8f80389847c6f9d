#!/usr/bin/env python3
"""Step time and peak memory: TRL's GRPO, TRL's experimental SDPO and sdpo_lite's SDPO, back to back.

    .venv/bin/python benchmarks/step_time.py                       # SmolLM2-135M on CPU, 32 and 128 tokens
    .venv/bin/python benchmarks/step_time.py --model tiny --steps 4 # a quick smoke run

Identical settings for all three: 4 prompts x 4 generations per step, top-100 support + tail, alpha 0.5, EMA
teacher (rate 0.05). Each trainer runs in its own process, so peak RSS (ru_maxrss) is its own. Step time is the
median over steps 2+ (step 1 pays one-off costs). Distillation must really be active in the measured steps, so the
reward marks every other rollout a success: every group then has a demonstration, and the table reports the
fraction of rollouts that had a teacher. (On hard prompts nobody succeeds and every SDPO trainer silently skips its
loss, which would make it look as cheap as GRPO.)
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

TRAINERS = ("grpo", "trl_sdpo", "sdpo_lite")


def every_other_succeeds(prompts, completions, **kwargs):
    """Half the rollouts of each group succeed, with a feedback string: distillation is active on every step."""
    return [{"score": float(i % 2 == 0), "feedback": "Wrong answer."} for i in range(len(completions))]


def plain_scores(prompts, completions, **kwargs):
    return [float(i % 2 == 0) for i in range(len(completions))]


def run_one(name: str, model_name: str, tokens: int, steps: int, batch: int = 16, accum: int = 1) -> dict:
    import torch
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from sdpo_lite import compat
    from sdpo_lite.course.tasks import load_task, to_conversational
    from sdpo_lite.course.models import load_model, precision_flags

    compat.install_cpu_lm_head()  # TRL 1.15's fused LM head needs Triton; on CPU all three trainers use PyTorch's
    torch.manual_seed(0)
    model, tok = load_model(model_name)
    dataset = to_conversational(load_task("addition", "train"))
    common = dict(output_dir=f"/tmp/sdpo_bench_{name}", per_device_train_batch_size=batch, num_generations=4,
                  gradient_accumulation_steps=accum,
                  max_completion_length=tokens, max_steps=steps, learning_rate=1e-6, report_to=[], seed=0,
                  save_strategy="no", logging_steps=1, disable_tqdm=True, temperature=1.0,
                  **precision_flags())
    if name == "grpo":
        trainer = GRPOTrainer(model=model, args=GRPOConfig(**common), processing_class=tok,
                              reward_funcs=[plain_scores], train_dataset=dataset)
    elif name == "trl_sdpo":
        from trl.experimental.sdpo import SDPOConfig as TRLSDPOConfig
        from trl.experimental.sdpo import SDPOTrainer as TRLSDPOTrainer
        args = TRLSDPOConfig(**common, distillation_mode="topk_logits", distillation_topk=100,
                             distillation_add_tail=True, distillation_alpha=0.5, teacher_model_kind="ema",
                             teacher_update_rate=0.05, success_reward_threshold=0.5)
        trainer = TRLSDPOTrainer(model=model, args=args, processing_class=tok, reward_funcs=[plain_scores],
                                 train_dataset=dataset)
    else:
        from sdpo_lite import SDPOConfig, SDPOTrainer
        trainer = SDPOTrainer(model=model, args=GRPOConfig(**common), processing_class=tok,
                              reward_funcs=[every_other_succeeds], train_dataset=dataset,
                              sdpo_config=SDPOConfig(alpha=0.5, distillation_topk=100, distillation_add_tail=True,
                                                     teacher_mode="ema", ema_tau=0.05))

    times = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

    trainer.add_callback(Clock())
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    teacher_frac = {"grpo": None,
                    "trl_sdpo": [h.get("self_distillation/reprompt_sample_fraction") for h in logs],
                    "sdpo_lite": [h.get("sdpo/frac_with_teacher") for h in logs]}[name]
    return {"trainer": name, "tokens": tokens, "step_times": times,
            "median_step_s": statistics.median(times[1:] if len(times) > 1 else times),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2,
            "peak_gpu_gib": torch.cuda.max_memory_allocated() / 1024 ** 3 if torch.cuda.is_available() else None,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "teacher_fraction": None if teacher_frac is None else statistics.mean(x or 0.0 for x in teacher_frac),
            "mean_completion_len": statistics.mean(h["completions/mean_length"] for h in logs)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tokens", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16, help="rollouts per device per micro-batch (4 prompts x 4)")
    ap.add_argument("--accum", type=int, default=1, help="gradient accumulation steps")
    ap.add_argument("--trainers", nargs="+", default=list(TRAINERS), choices=TRAINERS)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one trainer in this process
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args()
    if a.one:
        print("RESULT " + json.dumps(run_one(a.one, a.model, a.tokens[0], a.steps, a.batch, a.accum)))
        return
    results = []
    for tokens in a.tokens:
        for name in a.trainers:
            cmd = [sys.executable, __file__, "--one", name, "--model", a.model, "--tokens", str(tokens),
                   "--steps", str(a.steps), "--batch", str(a.batch), "--accum", str(a.accum)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                print(f"{name} @ {tokens} tokens failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                continue
            results.append(json.loads(line[0][7:]))
            r = results[-1]
            gpu = f", GPU peak {r['peak_gpu_gib']:.2f} GiB" if r["peak_gpu_gib"] is not None else ""
            print(f"  {name:10s} {tokens:4d} tokens: {r['median_step_s']:.2f} s/step, RSS {r['peak_rss_gb']:.2f} GB{gpu}",
                  flush=True)
    device = results[0]["device"] if results else "?"
    print(f"\nModel {a.model} on {device}, {a.batch} rollouts (4 generations each) x {a.accum} accumulation step(s), "
          f"top-100 + tail, alpha 0.5, EMA 0.05, {a.steps} steps (median of steps 2+)\n")
    print("| tokens | trainer | s/step | x GRPO | peak RSS (GB) | peak GPU (GiB) | rollouts with a teacher | mean completion length |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        base = next((x for x in results if x["trainer"] == "grpo" and x["tokens"] == r["tokens"]), None)
        ratio = f"{r['median_step_s'] / base['median_step_s']:.2f}" if base else "-"
        tf = "-" if r["teacher_fraction"] is None else f"{r['teacher_fraction']:.0%}"
        gpu = "-" if r["peak_gpu_gib"] is None else f"{r['peak_gpu_gib']:.2f}"
        print(f"| {r['tokens']} | {r['trainer']} | {r['median_step_s']:.2f} | {ratio} | {r['peak_rss_gb']:.2f} | {gpu} | "
              f"{tf} | {r['mean_completion_len']:.1f} |")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
