"""Two SDPO steps on the tiny LoRA model, with `import unsloth` + PatchFastRL before or after sdpo_lite's trainer.

Usage: unsloth_order.py ORDER OUT.json        ORDER: sdpo-first | unsloth-first | no-unsloth

Which `unsloth` is imported depends on sys.path: tests/test_unsloth.py puts its stand-in first (tests/stand_ins), or
runs this under an interpreter that has the real package with SDPO_REAL_UNSLOTH_CPU=1. On a CPU the real package
skips rewriting TRL's trainers (UNSLOTH_ALLOW_CPU=1 is needed to import its full API there), so we then call the
two functions its import runs on a GPU. Writes what happened as JSON: the classes, the loss, the teacher.
"""
import json
import os
import sys

order, out_path = sys.argv[1], sys.argv[2]
REAL_CPU = os.environ.get("SDPO_REAL_UNSLOTH_CPU") == "1"


def bring_in_unsloth():
    if REAL_CPU:
        os.environ["UNSLOTH_ALLOW_CPU"] = "1"
    import unsloth  # noqa: F401
    from unsloth import FastLanguageModel, PatchFastRL

    PatchFastRL("GRPO", FastLanguageModel)
    if REAL_CPU:  # what `import unsloth` does to TRL on a GPU (models/llama.py -> PatchFastRL -> these)
        from unsloth.models import rl

        rl.patch_trl_disable_gradient_checkpointing()
        rl.patch_trl_rl_trainers()


if order == "sdpo-first":
    import sdpo_lite.trainer  # noqa: F401
    bring_in_unsloth()
elif order == "unsloth-first":
    bring_in_unsloth()
    import sdpo_lite.trainer  # noqa: F401
elif order == "no-unsloth":  # the reference: the same steps without Unsloth
    import sdpo_lite.trainer  # noqa: F401
else:
    raise SystemExit(f"unknown order {order!r}")

import inspect  # noqa: E402

import torch  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402

from sdpo_lite import SDPOConfig  # noqa: E402
from sdpo_lite.trainer import SDPOTrainer  # noqa: E402
from sdpo_lite.course.unsloth import grpo_overrides, load_for_sdpo  # noqa: E402

loaded = load_for_sdpo("tiny", precision="fp32", verbose=False)
dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": f"What is {a} + {b}?"}]}
                             for a, b in [(1, 2), (3, 4), (5, 6), (7, 8)]])


def half_reward(prompts, completions, **kwargs):
    """Even rollouts succeed: every group has a successful peer, so every rollout has a teacher."""
    return [{"score": float(i % 2 == 0), "feedback": f"FB-{i}"} for i in range(len(completions))]


args = trl.GRPOConfig(output_dir="/tmp/sdpo_unsloth_order", per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=8, max_steps=2, learning_rate=1e-2, report_to=[], use_cpu=True,
                      bf16=False, fp16=False, save_strategy="no", seed=0, logging_steps=1, disable_tqdm=True,
                      **grpo_overrides(loaded))
trainer = SDPOTrainer(model=loaded.model, args=args, sdpo_config=SDPOConfig(distillation_topk=20),
                      processing_class=loaded.tokenizer, reward_funcs=[half_reward], train_dataset=dataset)
lora_before = {n: p.detach().clone() for n, p in loaded.model.named_parameters() if p.requires_grad}
trainer.train()
logs = [h for h in trainer.state.log_history if "loss" in h]
current = trl.GRPOTrainer
result = {
    "order": order,
    "unsloth": getattr(sys.modules.get("unsloth"), "__file__", None),
    "stand_in": bool(getattr(sys.modules.get("unsloth"), "STAND_IN", False)),
    "trl_grpo_trainer": f"{current.__module__}.{current.__qualname__}",
    "trl_grpo_module_attr": f"{trl.trainer.grpo_trainer.GRPOTrainer.__module__}",
    "trl_mro": [f"{c.__module__}.{c.__qualname__}" for c in current.__mro__],
    "patched_compute_loss_calls_override": "self._compute_loss(" in inspect.getsource(current.compute_loss),
    "config_class": f"{type(args).__module__}.{type(args).__qualname__}",
    "mro": [f"{c.__module__}.{c.__qualname__}" for c in SDPOTrainer.__mro__],
    "path": loaded.path,
    "teacher_uses_adapter": trainer.teacher.uses_adapter,
    "teacher_adapter": next((a for a in loaded.model.peft_config if a != "default"), None),
    "teacher_module_is_none": trainer.teacher.module is None,
    "teacher_updates": trainer.teacher.updates,
    "global_step": trainer.state.global_step,
    "losses": [h["loss"] for h in logs],
    "distill_loss": [h.get("sdpo/distill_loss") for h in logs],
    "frac_with_teacher": [h.get("sdpo/frac_with_teacher") for h in logs],
    "lora_changed": any(not torch.equal(p.detach(), lora_before[n])
                        for n, p in loaded.model.named_parameters() if n in lora_before),
}
with open(out_path, "w") as handle:
    json.dump(result, handle, indent=1)
print(json.dumps(result, indent=1))
