"""One SDPO optimiser step on the tiny model with deterministic "generations"; saves the loss and new weights.

Used by tests/test_multiprocess.py: run once as a single process with a global batch of 8, and once with
`accelerate launch --num_processes 2` with 4 per process. SGD (no momentum) makes the weight change equal to
lr x gradient, so equal weights after the step mean equal gradients.
Usage: one_step.py OUT.pt PER_DEVICE_BATCH GRAD_ACCUM
"""
import sys

import torch
from datasets import Dataset
from trl import GRPOConfig

from sdpo_lite import SDPOConfig, SDPOTrainer
from sdpo_lite.course.models import load_model

out_path, per_device, accum = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
G, T = 8, 6
model, tok = load_model("tiny", precision="fp32", device="cpu")
dataset = Dataset.from_list([{"prompt": f"What is {a} + {b}?", "a": a} for a, b in [(1, 2), (3, 4), (5, 6)]])


def reward(prompts, completions, completion_ids, a, **kwargs):
    """Deterministic scores from the token ids; a feedback string that names the rollout."""
    return [{"score": float(sum(ids) % 3 == 0), "feedback": f"ids sum to {sum(ids)}"} for ids in completion_ids]


args = GRPOConfig(output_dir="/tmp/sdpo_one_step", per_device_train_batch_size=per_device, num_generations=G,
                  gradient_accumulation_steps=accum, max_completion_length=T, max_steps=1, learning_rate=0.5,
                  optim="sgd", report_to=[], use_cpu=True, bf16=False, save_strategy="no", seed=0,
                  logging_steps=1, shuffle_dataset=False)
trainer = SDPOTrainer(model=model, args=args, sdpo_config=SDPOConfig(distillation_topk=16, is_clip=None),
                      processing_class=tok, reward_funcs=[reward], train_dataset=dataset)
rank, B = trainer.accelerator.process_index, per_device * accum
unwrapped = trainer.accelerator.unwrap_model(trainer.model)


def fixed_generate(input_ids=None, attention_mask=None, **kwargs):
    """Replace sampling by completions that depend only on the rollout's GLOBAL index in the batch."""
    rows = []
    for i in range(input_ids.size(0)):
        g = torch.Generator().manual_seed(1000 + rank * B + i)
        rows.append(torch.randint(10, 200, (T,), generator=g))
    return torch.cat([input_ids, torch.stack(rows).to(input_ids.device)], dim=1)


unwrapped.generate = fixed_generate
trainer.train()
if trainer.accelerator.is_main_process:
    loss = [h["loss"] for h in trainer.state.log_history if "loss" in h][0]
    torch.save({"loss": loss, "state": {k: v.detach().clone() for k, v in unwrapped.state_dict().items()},
                "frac_with_teacher": [h for h in trainer.state.log_history if "loss" in h][0]["sdpo/frac_with_teacher"]},
               out_path)
