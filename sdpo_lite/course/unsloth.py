"""Unsloth for SDPO: 4-bit QLoRA on a CUDA GPU, the same LoRA recipe with transformers + PEFT everywhere else.

What Unsloth changes, and where it lives:
  * the frozen base weights are stored in 4 bit (bitsandbytes NF4), about a quarter of their bf16 size;
  * only LoRA adapters train: rank 16 on every attention and MLP projection (`models.LORA_TARGETS`);
  * hand-written kernels for the LoRA layers, RoPE, RMSNorm and the loss, and its "unsloth" gradient checkpointing,
    which parks activations in CPU RAM;
  * an 8-bit AdamW (bitsandbytes) keeps the adapters' optimiser state small.
All of that lives in the model and the optimiser. The trainer stays TRL's own GRPOTrainer: Unsloth's generated
trainer replaces the loss that SDPO overrides (see `sdpo_lite.compat.genuine_grpo_trainer`, docs/unsloth.md).

Under LoRA the SDPO teacher is a second adapter, "sdpo_teacher", on the same (possibly 4-bit) base: EMA costs two
small adapters, never a second copy of the model (`sdpo_lite.teacher`).

Without a CUDA GPU, or without the unsloth package, `load_for_sdpo` falls back to transformers + PEFT with the same
rank and targets and full-precision base weights, and prints one line saying why. Importing this module imports
neither trl, transformers nor peft, so `import_unsloth()` can run before them, as Unsloth asks.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Any

import torch

from sdpo_lite.course.models import LORA_TARGETS, add_lora

__all__ = ["LoadedModel", "unsloth_status", "import_unsloth", "load_for_sdpo", "choose_optimizer", "grpo_overrides",
           "memory_report", "trainer_base_report"]



@dataclass
class LoadedModel:
    """What `load_for_sdpo` returns. `path` says how: "unsloth" (4-bit QLoRA) or "peft" (transformers + PEFT)."""

    model: Any
    tokenizer: Any
    path: str
    reason: str  # why this path was taken
    name: str
    lora_rank: int

    def __iter__(self):  # model, tokenizer = load_for_sdpo(...)
        return iter((self.model, self.tokenizer))

    def describe(self) -> str:
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.model.parameters())
        how = ("Unsloth, 4-bit base + LoRA" if self.path == "unsloth" else
               "transformers + PEFT LoRA, full-precision base")
        return (f"{self.name} via {how} (rank {self.lora_rank}): {trainable / 1e6:.2f}M of {total / 1e6:.1f}M "
                f"parameters train ({trainable / total:.2%})")


# --------------------------------------------------------------------------------------------------
# Is Unsloth usable here?
# --------------------------------------------------------------------------------------------------
def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def unsloth_status() -> tuple[bool, str]:
    """``(usable, why)``: Unsloth's 4-bit path needs a CUDA GPU and the unsloth package."""
    if not torch.cuda.is_available():
        return False, "no CUDA GPU (Unsloth's 4-bit kernels need one)"
    if not _installed("unsloth"):
        return False, "the unsloth package is not installed (pip install unsloth)"
    return True, "a CUDA GPU and the unsloth package"


def _import_unsloth(patch_rl: bool = True):
    """``(unsloth module or None, why)``; imports unsloth and runs PatchFastRL("GRPO") when usable."""
    usable, why = unsloth_status()
    if not usable:
        return None, why
    try:
        import unsloth
        from unsloth import FastLanguageModel, PatchFastRL
    except Exception as err:  # a broken install must not stop the course: fall back, and say why
        return None, f"`import unsloth` failed ({type(err).__name__}: {err})"
    if patch_rl:
        PatchFastRL("GRPO", FastLanguageModel)  # its TRL helper fixes; SDPOTrainer keeps TRL's own trainer anyway
    return unsloth, why


def import_unsloth(patch_rl: bool = True):
    """Import unsloth (and run ``PatchFastRL("GRPO", FastLanguageModel)``) if it is usable here; else None.

    Call it first, before anything imports trl, transformers or peft: Unsloth patches them at import and warns
    when it comes too late. SDPOTrainer works in either order (`sdpo_lite.compat.genuine_grpo_trainer`).
    """
    return _import_unsloth(patch_rl)[0]


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------
def load_for_sdpo(name: str | None = None, *, max_seq_length: int = 1024, lora_rank: int = 16,
                  lora_alpha: int | None = None, precision: str | None = None, device: str | None = None,
                  use_unsloth: bool | None = None, verbose: bool = True) -> LoadedModel:
    """A LoRA model and its tokenizer for SDPOTrainer: Unsloth's 4-bit QLoRA when it can, else transformers + PEFT.

    Both paths put LoRA adapters (rank `lora_rank`, alpha 2 x rank unless given, no dropout) on LORA_TARGETS and
    freeze the base. `name`, `precision` and `device` (the fallback's) as in `sdpo_lite.course.models.load_model`;
    name None is chosen from the hardware. `use_unsloth`: None = when usable, False = never, True = required (raises with the
    reason when it is not usable).
    """
    from sdpo_lite.course.models import default_model_choice

    name = name or default_model_choice()[0]
    alpha = lora_alpha or 2 * lora_rank
    unsloth, why = _import_unsloth() if use_unsloth is not False else (None, "use_unsloth=False")
    if unsloth is not None:
        return _load_with_unsloth(name, max_seq_length, lora_rank, alpha, why, verbose)
    if use_unsloth:
        raise RuntimeError(f"use_unsloth=True, but Unsloth cannot be used here: {why}")
    loaded = _load_with_peft(name, precision, device, lora_rank, alpha, why)
    if verbose:
        dtype = str(next(loaded.model.parameters()).dtype).removeprefix("torch.")
        print(f"Unsloth not used: {why}. Fallback: transformers + PEFT LoRA (rank {lora_rank} on "
              f"{', '.join(LORA_TARGETS)}), {name} with {dtype} base weights, no 4-bit.")
    return loaded


def _load_with_unsloth(name, max_seq_length, rank, alpha, why, verbose) -> LoadedModel:
    from unsloth import FastLanguageModel

    from sdpo_lite.course.models import BUILTIN_MODELS, prepare_for_generation, resolve_source

    source = resolve_source(name, hub=False)[0] if name.lower() in BUILTIN_MODELS else name  # a local folder
    model, tokenizer = FastLanguageModel.from_pretrained(model_name=source, max_seq_length=max_seq_length,
                                                         load_in_4bit=True, dtype=None)  # dtype None: bf16 or fp16
    model = FastLanguageModel.get_peft_model(model, r=rank, lora_alpha=alpha, lora_dropout=0, bias="none",
                                             target_modules=list(LORA_TARGETS), use_gradient_checkpointing="unsloth",
                                             random_state=0)
    prepare_for_generation(model, tokenizer)
    if verbose:
        print(f"Unsloth: {name} in 4 bit + LoRA rank {rank} on {', '.join(LORA_TARGETS)} ({why}).")
    return LoadedModel(model, tokenizer, "unsloth", why, name, rank)


def _load_with_peft(name, precision, device, rank, alpha, why) -> LoadedModel:
    from sdpo_lite.course.models import load_model

    base, tokenizer = load_model(name, precision=precision, device=device, verbose=False)
    return LoadedModel(add_lora(base, rank, alpha), tokenizer, "peft", why, name, rank)


# --------------------------------------------------------------------------------------------------
# Training arguments
# --------------------------------------------------------------------------------------------------
def choose_optimizer() -> tuple[str, str]:
    """``(optim, why)`` for GRPOConfig: bitsandbytes' 8-bit AdamW on a CUDA GPU that has it, else PyTorch's AdamW."""
    if torch.cuda.is_available() and _installed("bitsandbytes"):
        return "adamw_8bit", "8-bit AdamW (bitsandbytes): the optimiser state of the adapters in 8 bit"
    reason = "no CUDA GPU" if not torch.cuda.is_available() else "bitsandbytes is not installed"
    return "adamw_torch", f"PyTorch's AdamW ({reason}; bitsandbytes' 8-bit AdamW needs both)"


def grpo_overrides(loaded: LoadedModel | None = None) -> dict:
    """GRPOConfig keyword arguments for a `load_for_sdpo` model: the optimiser, and on Unsloth's path no TRL
    gradient checkpointing.

    Why: Unsloth's model already has Unsloth's own checkpointing, and TRL/transformers enabling theirs would replace
    it. On the PEFT fallback TRL's default (checkpointing on) stays: it costs some speed on the CPU, and without it
    the parity notebook peaked at 2.7 GiB, over a 2 GB Binder session.
    """
    overrides = {"optim": choose_optimizer()[0]}
    if loaded is not None and loaded.path == "unsloth":
        overrides["gradient_checkpointing"] = False
    return overrides


# --------------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------------
def _rss_bytes() -> int:
    """This process's resident memory now (Linux /proc), or its peak where /proc is missing."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _peak_rss_bytes()


def _peak_rss_bytes() -> int:
    """This process's peak resident memory (0 where the `resource` module is missing, i.e. Windows)."""
    try:
        import resource
    except ImportError:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


def memory_report(label: str, *, reset_peak: bool = False) -> dict:
    """Print and return memory now and at peak: GPU memory allocated by torch on a GPU, the process's RSS on a CPU.

    `reset_peak=True` (GPU only) starts a new peak, so a later report's peak belongs to what ran in between. A
    process's peak RSS cannot be reset: on a CPU it covers everything since the process (kernel) started.
    """
    if torch.cuda.is_available():
        if reset_peak:
            torch.cuda.reset_peak_memory_stats()
        now, peak, kind = torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated(), "GPU memory (torch)"
    else:
        now, peak, kind = _rss_bytes(), _peak_rss_bytes(), "process RSS"
    gib = 2 ** 30
    print(f"{label}: {kind} {now / gib:.2f} GiB now, peak {peak / gib:.2f} GiB")
    return {"label": label, "kind": kind, "now_bytes": now, "peak_bytes": peak}


def trainer_base_report() -> str:
    """Which class SDPOTrainer builds on, and what `trl.GRPOTrainer` is right now (patched by Unsloth or not)."""
    import trl

    from sdpo_lite.trainer import SDPOTrainer

    base, current = SDPOTrainer.__mro__[1], trl.GRPOTrainer
    patched = current is not base and current.__module__ != "trl.trainer.grpo_trainer"
    return (f"SDPOTrainer builds on {base.__module__}.{base.__qualname__} (TRL's own class); trl.GRPOTrainer is "
            f"{current.__module__}.{current.__qualname__}" + (" (replaced by Unsloth)" if patched else " (as shipped)"))
