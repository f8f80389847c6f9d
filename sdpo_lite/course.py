"""The notebooks' training recipes: profiles (CPU / GPU / tiny), one-call training runs, and the comparison plot.

Notebook cells stay short because the work lives here: `train_run("sdpo", profile, reward)` loads fresh weights,
trains, records the per-step numbers a learner wants to see and measures held-out accuracy afterwards.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from sdpo_lite.config import SDPOConfig


@dataclass
class Profile:
    """How big a run is. Chosen from the hardware; every field can be overridden in a notebook cell."""

    name: str
    model_name: str
    steps: int
    prompts_per_step: int
    num_generations: int
    max_completion_length: int
    learning_rate: float
    eval_limit: int | None  # held-out problems to score (None = all)
    temperature: float = 1.0
    note: str = ""

    def describe(self) -> str:
        return (f"profile {self.name}: {self.model_name}, {self.steps} steps x {self.prompts_per_step} prompt(s) x "
                f"{self.num_generations} generations, {self.max_completion_length} tokens, lr {self.learning_rate:g}"
                + (f" ({self.note})" if self.note else ""))


PROFILES = {
    "cpu": Profile("cpu", "smollm2-135m", steps=24, prompts_per_step=1, num_generations=8, max_completion_length=16,
                   learning_rate=3e-5, eval_limit=None, note="about 10 minutes for the whole notebook on 2 cores"),
    "gpu": Profile("gpu", "Qwen/Qwen2.5-0.5B-Instruct", steps=100, prompts_per_step=4, num_generations=8,
                   max_completion_length=32, learning_rate=1e-5, eval_limit=None, note="a free T4 or better"),
    "tiny": Profile("tiny", "tiny", steps=3, prompts_per_step=1, num_generations=4, max_completion_length=8,
                    learning_rate=1e-3, eval_limit=16, note="development only: random weights, numbers mean nothing"),
}


def choose_profile(name: str | None = None, **overrides) -> Profile:
    """The profile for this machine: `tiny` when SDPO_MODEL=tiny, `gpu` with a CUDA GPU and the Hub, else `cpu`."""
    from sdpo_lite.models import default_model_name

    if name is None:
        model = default_model_name()
        name = "tiny" if model == "tiny" else "cpu" if model == "smollm2-135m" else "gpu"
        if name == "gpu":
            overrides.setdefault("model_name", model)
    return replace(PROFILES[name], **overrides)


def grpo_args(profile: Profile, output_dir: str, seed: int = 0, **overrides):
    """A GRPOConfig for the profile: precision from the hardware, no checkpoints, quiet, logging every step."""
    from trl import GRPOConfig

    from sdpo_lite.models import precision_flags

    kwargs = dict(output_dir=output_dir, per_device_train_batch_size=profile.prompts_per_step * profile.num_generations,
                  num_generations=profile.num_generations, max_completion_length=profile.max_completion_length,
                  max_steps=profile.steps, learning_rate=profile.learning_rate, temperature=profile.temperature,
                  lr_scheduler_type="constant", warmup_steps=0, logging_steps=1, save_strategy="no", report_to=[],
                  seed=seed, disable_tqdm=False, **precision_flags())
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)


@dataclass
class RunResult:
    """What one training run did: per-step training numbers and held-out accuracy after training."""

    label: str
    history: list[dict] = field(default_factory=list)  # one dict per optimiser step (TRL's logs)
    accuracy: float | None = None
    seconds: float = 0.0
    trainer: object = None
    model: object = None

    def series(self, key: str) -> list[float]:
        return [h.get(key, float("nan")) for h in self.history]


def train_run(label: str, profile: Profile, reward_funcs, *, sdpo: SDPOConfig | None = None, seed: int = 0,
              dataset=None, evaluate: bool = True, eval_task: str = "addition", output_dir: str | None = None,
              model_and_tokenizer=None, **grpo_overrides) -> RunResult:
    """Train from fresh weights with SDPO (`sdpo` given, enabled or not) and report per-step numbers + accuracy."""
    from sdpo_lite.data import load_task, to_conversational
    from sdpo_lite.evaluate import accuracy
    from sdpo_lite.models import load_model
    from sdpo_lite.trainer import SDPOTrainer

    start = time.perf_counter()
    model, tok = model_and_tokenizer or load_model(profile.model_name)
    if dataset is None:
        dataset = to_conversational(load_task("addition", "train"))
    args = grpo_args(profile, output_dir or f"/tmp/sdpo_course/{label}", seed=seed, **grpo_overrides)
    trainer = SDPOTrainer(model=model, args=args, sdpo_config=sdpo or SDPOConfig(enabled=False), processing_class=tok,
                          reward_funcs=reward_funcs if isinstance(reward_funcs, list) else [reward_funcs],
                          train_dataset=dataset)
    trainer.train()
    result = RunResult(label, [h for h in trainer.state.log_history if "reward" in h], trainer=trainer, model=model)
    if evaluate:
        result.accuracy = accuracy(model, tok, eval_task, "heldout", limit=profile.eval_limit, progress=False).accuracy
    result.seconds = time.perf_counter() - start
    return result


def plot_comparison(runs: list[RunResult], before: float | None = None, *, key: str = "reward", window: int = 5):
    """Left: training success rate per step (moving average). Right: held-out accuracy before/after per run."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    styles = ["-", "--", ":", "-."]
    for i, run in enumerate(runs):
        ys = run.series(key)
        smooth = [sum(ys[max(0, j - window + 1):j + 1]) / len(ys[max(0, j - window + 1):j + 1]) for j in range(len(ys))]
        left.plot(range(1, len(ys) + 1), smooth, styles[i % 4], lw=2, label=run.label)
    left.set(xlabel="training step", ylabel=f"success rate ({window}-step mean)", ylim=(-0.02, 1.02),
             title="Training rollouts that were correct")
    left.legend(frameon=False)
    names = ["before"] + [r.label for r in runs]
    values = [before if before is not None else float("nan")] + [r.accuracy for r in runs]
    colors = ["#999999", "#0072B2", "#E69F00", "#009E73", "#CC79A7"][:len(names)]  # colour-blind-safe
    bars = right.bar(names, values, color=colors)
    for bar, v in zip(bars, values):
        right.text(bar.get_x() + bar.get_width() / 2, v + 0.01, f"{v:.0%}", ha="center", va="bottom")
    right.set(ylabel="held-out accuracy", ylim=(0, max(0.1, max(values) * 1.25)), title="Held-out accuracy")
    fig.tight_layout()
    return fig
