"""The notebooks' training recipes: profiles (cpu / lowmem / gpu / tiny) and one-call training runs.

Notebook cells stay short because the work lives here: `train_run("SDPO", profile, reward, sdpo=SDPOConfig())`
loads fresh weights, trains, records the per-step numbers a learner wants to see and measures held-out accuracy
afterwards. Tables and plots of the results: `reports`.
"""
from __future__ import annotations

import logging
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from transformers import TrainerCallback

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
    learning_rate: float  # GRPO's
    eval_limit: int | None  # held-out problems to score (None = all)
    sdpo_learning_rate: float = 1e-5  # the distillation loss wants a smaller step than GRPO (see the benchmark)
    grpo_weight: float = 0.9  # lambda of the blend lambda*GRPO + (1-lambda)*SDPO: SDPOConfig.grpo_weight
    temperature: float = 1.0
    eval_tokens: int = 24  # greedy tokens per held-out answer ("68" needs few, a function needs more)
    grad_accum: int = 1  # backward passes per optimiser step: same update, 1/grad_accum of the activation memory
    lora_rank: int | None = None  # None: full fine-tuning; else LoRA adapters of this rank on a frozen base
    note: str = ""

    def __post_init__(self):
        if (self.prompts_per_step * self.num_generations) % self.grad_accum:
            raise ValueError(f"grad_accum={self.grad_accum} must divide the {self.prompts_per_step} x "
                             f"{self.num_generations} rollouts of a step")

    def describe(self) -> str:
        return (f"profile {self.name}: {self.model_name}, {self.steps} steps x {self.prompts_per_step} prompt(s) x "
                f"{self.num_generations} generations, {self.max_completion_length} tokens, lr {self.learning_rate:g}"
                + (f" ({self.note})" if self.note else ""))


PROFILES = {
    "cpu": Profile("cpu", "smollm2-135m", steps=24, prompts_per_step=1, num_generations=8, max_completion_length=16,
                   learning_rate=1e-5, eval_limit=None, sdpo_learning_rate=1e-5,
                   note="about 10 minutes for the whole notebook on 2 cores"),
    # GPU numbers are estimates until measured on a T4: the step time measured on an H200 (README, Performance) x 2.
    "gpu": Profile("gpu", "Qwen/Qwen2.5-0.5B-Instruct", steps=100, prompts_per_step=4, num_generations=8,
                   max_completion_length=32, learning_rate=1e-5, eval_limit=None, sdpo_learning_rate=5e-6,
                   grad_accum=2,
                   note="a free T4 or better; about 12 minutes for notebook 01 on a T4 (an estimate, not yet "
                        "measured on a T4); learning rates not yet tuned on a GPU"),
    # Full fine-tuning of SmolLM2-135M with AdamW and an EMA teacher needs about 3.3 GB; a Binder session has 2 GB.
    # LoRA keeps the base frozen: no optimiser state or teacher copy of the full model; micro-batches of 2 rollouts
    # (the same update) halve the activations again: one code-task step peaked at 1.50 GiB, 1.76 GiB with 8.
    "lowmem": Profile("lowmem", "smollm2-135m", steps=24, prompts_per_step=1, num_generations=8,
                      max_completion_length=16, learning_rate=1e-4, eval_limit=None, sdpo_learning_rate=3e-5,
                      lora_rank=16, grad_accum=4,
                      note="LoRA rank 16 on CPU, 2 rollouts per backward pass, for sessions under 4 GB such as "
                           "Binder's 2 GB; learning rates not tuned"),
    "tiny": Profile("tiny", "tiny", steps=3, prompts_per_step=1, num_generations=4, max_completion_length=8,
                    learning_rate=1e-3, eval_limit=16, sdpo_learning_rate=1e-3,
                    note="development only: random weights, numbers mean nothing"),
}


# What a task changes in each profile: a Python function needs far more tokens than "68", so fewer steps fit in the
# CPU budget (a code step with 8 x 64 tokens takes ~15 s on 2 cores).
TASK_OVERRIDES = {
    "addition": {},
    "addition3": {},  # the same recipe on three-digit operands (benchmarks/regimes.py: reward sparsity)
    "addition_hard": {},  # notebook 04 searches these questions at the addition recipe's budget (discovery.BUDGETS)
    "code": {
        "cpu": dict(steps=10, max_completion_length=64, eval_tokens=96,
                    note="about 6 minutes for notebook 03 on 2 cores"),
        "lowmem": dict(steps=10, max_completion_length=64, eval_tokens=96),
        "gpu": dict(steps=40, prompts_per_step=4, max_completion_length=256, eval_tokens=256, grad_accum=8,
                    note="a free T4 or better; about 20 minutes for notebook 03 on a T4 (an estimate, not yet "
                         "measured on a T4); not yet tuned on a GPU"),
        "tiny": dict(max_completion_length=16, eval_tokens=16),
    },
    # Notebook 02 (LoRA; the 0.9 GRPO + 0.1 SDPO blend). CPU, one run each: the blend at 1e-4 went 43% -> 56%
    # held-out; pure SDPO 43% -> 11% (1e-4), 29% (3e-5), 43% (1e-5). GPU numbers are untested.
    "parity": {
        "cpu": dict(steps=24, max_completion_length=24, eval_tokens=24, temperature=0.7, learning_rate=1e-4,
                    sdpo_learning_rate=1e-4, eval_limit=None, note="LoRA; about 3 minutes for the notebook on 2 cores"),
        "lowmem": dict(steps=24, max_completion_length=24, eval_tokens=24, temperature=0.7, learning_rate=1e-4,
                       sdpo_learning_rate=1e-4, eval_limit=None, note="LoRA, as the cpu profile of this notebook"),
        "gpu": dict(steps=100, prompts_per_step=4, max_completion_length=256, eval_tokens=256, temperature=1.0,
                    learning_rate=5e-5, sdpo_learning_rate=5e-5, eval_limit=None,
                    note="Unsloth 4-bit QLoRA; not yet run on a GPU"),
        "tiny": dict(steps=2, max_completion_length=16, eval_tokens=16, eval_limit=8, learning_rate=1e-3,
                     sdpo_learning_rate=1e-3, note="development only: random weights, numbers mean nothing"),
    },
}


LOW_MEMORY_BYTES = 4 * 2**30  # under this, the CPU profile's full fine-tuning (about 3.3 GB) does not fit


def choose_profile(name: str | None = None, *, task: str = "addition", **overrides) -> Profile:
    """The profile for this machine and task: `tiny` when SDPO_MODEL=tiny, `gpu` with a CUDA GPU and the Hub,
    `lowmem` on a CPU with under 4 GB to use (Binder), else `cpu`; then the task's adjustments (TASK_OVERRIDES),
    then yours."""
    from sdpo_lite.course.models import default_model_name
    from sdpo_lite.course.platform import memory_limit_bytes

    if task not in TASK_OVERRIDES:
        raise ValueError(f"no profiles for task {task!r}; known: {sorted(TASK_OVERRIDES)} (add it to TASK_OVERRIDES)")
    if name is None:
        model = default_model_name()
        name = "tiny" if model == "tiny" else "cpu" if model == "smollm2-135m" else "gpu"
        if name == "cpu" and (memory_limit_bytes() or LOW_MEMORY_BYTES) < LOW_MEMORY_BYTES:
            name = "lowmem"
        if name == "gpu":
            overrides.setdefault("model_name", model)
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)} or None (from the hardware)")
    return replace(PROFILES[name], **{**TASK_OVERRIDES[task].get(name, {}), **overrides})


def grpo_args(profile: Profile, output_dir: str, seed: int = 0, **overrides):
    """A GRPOConfig for the profile: precision from the hardware, no checkpoints, quiet, logging every step."""
    from trl import GRPOConfig

    from sdpo_lite.course.models import precision_flags

    rollouts = profile.prompts_per_step * profile.num_generations  # one generation batch = one optimiser step
    kwargs = dict(output_dir=output_dir, per_device_train_batch_size=rollouts // profile.grad_accum,
                  gradient_accumulation_steps=profile.grad_accum, num_generations=profile.num_generations,
                  max_completion_length=profile.max_completion_length,
                  max_steps=profile.steps, learning_rate=profile.learning_rate, temperature=profile.temperature,
                  lr_scheduler_type="constant", warmup_steps=0, logging_steps=1, save_strategy="no", report_to=[],
                  seed=seed, disable_tqdm=False, **precision_flags(),
                  # TRL checkpoints activations by default; transformers' default non-reentrant variant kept 1.4 GB
                  # for one LoRA SmolLM2 pass over 8 x 264 tokens on the CPU, the reentrant one 0.34 GB.
                  gradient_checkpointing_kwargs={"use_reentrant": True})
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)


@dataclass
class RunResult:
    """What one training run did: per-step training numbers and held-out accuracy after training.

    `trainer` and `model` are None unless the run was asked to keep them (`train_run(keep=...)`): a notebook that
    compares three runs must not hold three models, optimisers and teachers at once (a T4 has 15 GB, Binder 2).
    """

    label: str
    history: list[dict] = field(default_factory=list)  # one dict per optimiser step (TRL's logs)
    accuracy: float | None = None
    seconds: float = 0.0
    sdpo_enabled: bool = False
    rollouts: list = field(default_factory=list)  # the last step's RolloutRecords (trainer.last_rollouts)
    step_seconds: list[float] = field(default_factory=list)  # wall time since training began, at each step's end
    examples: list = field(default_factory=list)  # held-out (prompt, completion, expected, ok) after training
    trainer: object = None
    model: object = None

    @property
    def key(self) -> str:
        """A short name for recorded results: "blend (lambda=0.9)" -> "blend", "SDPO, no feedback" -> "sdpo_no_feedback"."""
        return re.sub(r"\W+", "_", self.label.split(" (")[0].lower()).strip("_")

    def series(self, key: str) -> list[float]:
        return [h.get(key, float("nan")) for h in self.history]


KEEP = {"records": "the numbers and the last step's rollouts only",
        "model": "also the trained model and its trainer (EMA teacher, tokenizer, settings); optimiser state freed",
        "all": "everything, optimiser state included (to train on)"}


def check_keep(keep: str) -> None:
    if keep not in KEEP:
        raise ValueError(f"keep={keep!r}; choose one of " + "; ".join(f"{k!r}: {v}" for k, v in KEEP.items()))


def train_run(label: str, profile: Profile, reward_funcs, *, sdpo: SDPOConfig, task: str = "addition", seed: int = 0,
              evaluate: bool = True, output_dir: str | None = None, model_and_tokenizer=None,
              log_every: int | None = 4, keep: str = "records", **grpo_overrides) -> RunResult:
    """Train from fresh weights on `task`'s train split; report per-step numbers and held-out accuracy on that task.

    `sdpo` is required: `SDPOConfig(...)` trains SDPO (or the lambda-blend), `SDPOConfig(enabled=False)` plain GRPO.
    `keep` (see KEEP) says what outlives the run; the rest is freed before returning, so the next run starts
    from the memory this one started from. Extra keyword arguments go to GRPOConfig (`grpo_args`)."""
    check_keep(keep)
    if not isinstance(sdpo, SDPOConfig):
        raise TypeError(f"sdpo must be an SDPOConfig (SDPOConfig(enabled=False) for plain GRPO), got {sdpo!r}")
    renamed = sorted({"dataset", "eval_task"} & set(grpo_overrides))
    if renamed:  # sdpo_lite 0.1's arguments: they could name two different tasks
        raise TypeError(f"train_run no longer takes {', '.join(renamed)}: task='...' names both the training rows "
                        "and the held-out split, e.g. train_run(..., task=\"code\")")
    from sdpo_lite.course.models import add_lora, load_model
    from sdpo_lite.course.tasks import load_task, to_conversational
    from sdpo_lite.trainer import SDPOTrainer

    start = time.perf_counter()
    model, tok = model_and_tokenizer or load_model(profile.model_name)
    if profile.lora_rank and model_and_tokenizer is None:  # the lowmem profile: adapters on a frozen base
        model = add_lora(model, profile.lora_rank)
    dataset = to_conversational(load_task(task, "train"))
    args = grpo_args(profile, output_dir or f"/tmp/sdpo_course/{label}", seed=seed, **grpo_overrides)
    trainer = SDPOTrainer(model=model, args=args, sdpo_config=sdpo, processing_class=tok,
                          reward_funcs=reward_funcs if isinstance(reward_funcs, list) else [reward_funcs],
                          train_dataset=dataset)
    del model
    return run_trainer(label, trainer, profile=profile, task=task, evaluate=evaluate, log_every=log_every, keep=keep,
                       start=start)


def run_trainer(label: str, trainer, *, profile: Profile, task: str = "addition", evaluate: bool = True,
                log_every: int | None = 4, keep: str = "records", start: float | None = None) -> RunResult:
    """Train an `SDPOTrainer` you built yourself and record what `train_run` records: per-step numbers, the wall
    clock, the last step's rollouts, held-out accuracy on `task` afterwards; then free what `keep` does not keep.

    `train_run` is this plus building the trainer from a profile; notebook 01 builds one by hand to show every
    argument, then hands it here so its run is reported like the others."""
    check_keep(keep)
    from sdpo_lite.course.evaluate import accuracy

    start = time.perf_counter() if start is None else start
    model, tok = trainer.model, trainer.processing_class
    clock = StepClock()
    trainer.add_callback(clock)
    if log_every:  # one short line every few steps instead of TRL's full log dictionaries
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(CompactLog(label, log_every))
    with notices_on_stdout():
        trainer.train()
    result = RunResult(label, [h for h in trainer.state.log_history if "reward" in h], sdpo_enabled=trainer.sdpo.enabled,
                       rollouts=trainer.last_rollouts, step_seconds=clock.seconds)
    if keep != "all":
        free_training_state(trainer)  # the optimiser's moments: twice the model's size in fp32
    if evaluate:
        t0 = time.perf_counter()
        held_out = accuracy(model, tok, task, "heldout", max_new_tokens=profile.eval_tokens, limit=profile.eval_limit,
                            progress=False)
        result.accuracy, result.examples = held_out.accuracy, held_out.examples
        if log_every:
            print(f"{label}: held-out accuracy {held_out.accuracy:.1%} ({held_out.correct}/{held_out.n} {task} "
                  f"problems, greedy, {time.perf_counter() - t0:.0f} s)", flush=True)
    if keep != "records":
        result.trainer, result.model = trainer, model
    del trainer, model
    release_memory()
    result.seconds = time.perf_counter() - start
    return result


@contextmanager
def notices_on_stdout(logger_name: str = "sdpo_lite"):
    """The trainer's one-off notices ("no rollout in this batch has a teacher ...") as plain `note:` lines in the
    cell's output while it trains: a logging warning otherwise goes to stderr, which notebooks draw as an error box."""
    log = logging.getLogger(logger_name)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("note: %(message)s"))
    propagate, log.propagate = log.propagate, False
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.propagate = propagate


def free_training_state(trainer) -> None:
    """Drop the optimiser, its scheduler and the accelerator's references to them: a finished run no longer needs
    them, and for full fine-tuning with AdamW they hold twice the model's weights. The model and teacher stay."""
    trainer.accelerator.free_memory()  # accelerate's own list of prepared models/optimisers/schedulers
    trainer.optimizer = trainer.lr_scheduler = None
    trainer.callback_handler.optimizer = trainer.callback_handler.lr_scheduler = None
    trainer.model.zero_grad(set_to_none=True)  # (accelerate's free_memory has just run the garbage collector)


def release_memory() -> None:
    """Collect what a dropped run left behind (trainers hold reference cycles) and return cached GPU memory."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class StepClock(TrainerCallback):
    """Wall time since training began, at the end of every optimiser step: learning curves against seconds."""

    def __init__(self):
        self.seconds: list[float] = []
        self.start = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self.start)


class CompactLog(TrainerCallback):
    """Print `SDPO step 8/24 | success 0.12 | truncated 75% | ... | 41 s, about 82 s to go` every few steps: a
    progress line that reads the same in Jupyter, Colab, Kaggle and a notebook rendered on GitHub (a tqdm widget
    saved mid-run shows "0/24" there)."""

    def __init__(self, label: str, every: int):
        self.label, self.every, self.start = label, every, time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        step = state.global_step
        if not logs or "reward" not in logs or (step % self.every and step != state.max_steps):
            return
        parts = [f"{self.label} step {step}/{state.max_steps}", f"success {logs['reward']:.2f}",
                 f"truncated {logs.get('completions/clipped_ratio', float('nan')):.0%}"]
        if "sdpo/frac_with_teacher" in logs:
            parts.append(f"with teacher {logs['sdpo/frac_with_teacher']:.0%}")
        if "sdpo/distill_loss" in logs:
            parts.append(f"distill loss {logs['sdpo/distill_loss']:.3f}")
        from sdpo_lite.course.evaluate import time_so_far

        parts.append(time_so_far(time.perf_counter() - self.start, step, state.max_steps))
        print(" | ".join(parts), flush=True)
