"""Shared fixtures. Tests never touch the Hugging Face Hub: models come from sdpo_lite.course.models (tiny, built
locally)."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def shared_path(*parts) -> Path:
    """A file under ../shared, or skip: a user's clone has no ../shared (it holds the team's reference data)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared holds the team's reference checks; a user's clone has none)")
    return path


def tiny_trainer(reward, *, sdpo=None, trainer_cls=None, dataset=None, model=None, **grpo_kwargs):
    """An SDPOTrainer on the tiny model (built locally in seconds), CPU, fp32, no logging, no checkpoints."""
    from datasets import Dataset
    from trl import GRPOConfig

    from sdpo_lite import SDPOConfig, SDPOTrainer
    from sdpo_lite.course.models import load_model

    if model is None:
        model, tok = load_model("tiny", precision="fp32", device="cpu")
    else:
        model, tok = model
    if dataset is None:
        dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": f"What is {a} + {b}?"}], "answer": a + b}
                                     for a, b in [(1, 2), (3, 4), (5, 6), (7, 8)]])
    args = dict(output_dir="/tmp/sdpo_test_out", per_device_train_batch_size=4, num_generations=4,
                max_completion_length=8, max_steps=2, learning_rate=1e-2, report_to=[], use_cpu=True, bf16=False,
                save_strategy="no", seed=0, logging_steps=1, disable_tqdm=True)
    args.update(grpo_kwargs)
    cls = trainer_cls or SDPOTrainer
    extra = {} if cls.__name__ == "GRPOTrainer" else {"sdpo_config": sdpo or SDPOConfig(distillation_topk=20)}
    return cls(model=model, args=GRPOConfig(**args), processing_class=tok, reward_funcs=[reward],
               train_dataset=dataset, **extra)
