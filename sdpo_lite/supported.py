"""What SDPOTrainer supports, checked at construction: TRL options, launchers, mixture-of-experts aux losses.

SDPO replaces GRPO's loss, so a GRPOConfig option whose only effect lives inside that loss would silently do nothing
in pure SDPO; a launcher that shards parameters (FSDP, DeepSpeed ZeRO-3) would hand SDPO's chunked LM head and its
teacher copy shards instead of weights. Each is refused here with an error that names the fix, or supported
(a mixture-of-experts model's load-balancing loss, added once). docs/supported.md lists every decision and why.
"""
from __future__ import annotations

import contextlib
import os

import torch

from sdpo_lite.config import SDPOConfig
from sdpo_lite.teacher import causal_lm_of

_SHARDED = ("shards the parameters across processes: SDPO's loss reads lm_head.weight directly and its teacher is a "
            "deep copy of the student, so both would hold shards, not weights")

_SUPPORTED_LAUNCHERS = ("SDPOTrainer runs in a single process or under DDP (`torchrun --nproc_per_node N train.py`, or "
                        "`accelerate launch` with a multi-GPU config that uses neither FSDP nor DeepSpeed; "
                        "tests/test_multiprocess.py checks 2 processes against 1)")

# GRPOConfig options whose only effect is inside GRPO's own loss or advantages. Pure SDPO (grpo_weight = 0) never
# computes that loss, so there they would silently do nothing; in a blend they shape its GRPO part, as in TRL.
GRPO_LOSS_ONLY = {
    "beta": "the KL-to-reference term is part of GRPO's loss (TRL would still load a reference model and run it "
            "on every batch, for nothing)",
    "loss_type": "chooses GRPO's policy-gradient loss and its normalisation",
    "epsilon": "clips GRPO's importance ratio",
    "epsilon_high": "clips GRPO's importance ratio",
    "delta": "clips GRPO's importance ratio",
    "importance_sampling_level": "sets GRPO's importance ratio per token or per sequence",
    "off_policy_mask_threshold": "masks sequences out of GRPO's loss",
    "top_entropy_quantile": "masks low-entropy tokens out of GRPO's loss",
    "scale_rewards": "scales GRPO's advantages (SDPO judges success on raw rewards)",
    "multi_objective_aggregation": "combines rewards into GRPO's advantages (SDPO judges success on raw rewards)",
    "sapo_temperature_neg": "shapes the 'sapo' GRPO loss",
    "sapo_temperature_pos": "shapes the 'sapo' GRPO loss",
    "vespo_k_pos": "shapes the 'vespo' GRPO loss",
    "vespo_lambda_pos": "shapes the 'vespo' GRPO loss",
    "vespo_k_neg": "shapes the 'vespo' GRPO loss",
    "vespo_lambda_neg": "shapes the 'vespo' GRPO loss",
}

_NEUTRAL = {"beta": 0.0, "top_entropy_quantile": 1.0, "off_policy_mask_threshold": None}  # the values that switch off


def grpo_args_of(args: tuple, kwargs: dict):
    """The GRPOConfig among SDPOTrainer's arguments (GRPOTrainer(model, reward_funcs, args, ...)), or None."""
    return kwargs["args"] if "args" in kwargs else args[2] if len(args) > 2 else None


def refuse_unsupported(sdpo: SDPOConfig, args, env=None) -> None:
    """Refuse, before any model is loaded, a launcher or a TRL option that SDPO would break or silently ignore."""
    env = os.environ if env is None else env
    launcher = launcher_problem(args, env)
    if launcher:
        raise ValueError(launcher)
    problems = option_problems(sdpo, args) if args is not None else []
    if problems:
        raise ValueError("SDPOTrainer cannot honour these GRPOConfig options:\n  - " + "\n  - ".join(problems))


def option_problems(sdpo: SDPOConfig, args) -> list[str]:
    """One message per GRPOConfig option that SDPO ignores or breaks, each naming the fix (empty: all fine)."""
    import dataclasses

    if not sdpo.enabled:
        return []  # plain GRPO: TRL's own loss, every option applies
    problems = []
    if getattr(args, "entropy_coef", 0.0) != 0.0 or getattr(args, "use_adaptive_entropy", False):
        problems.append(
            f"entropy_coef={getattr(args, 'entropy_coef', 0.0)}, use_adaptive_entropy="
            f"{getattr(args, 'use_adaptive_entropy', False)}: TRL adds its entropy bonus inside GRPO's loss, which "
            "pure SDPO replaces, and in a blend the entropies come from SDPO's student pass without gradient, so the "
            "bonus would train nothing. Fix: entropy_coef=0.0 and use_adaptive_entropy=False (for an entropy bonus, "
            "train plain GRPO: SDPOConfig(enabled=False)).")
    if getattr(args, "cast_lm_head_to_fp32", False):
        problems.append(
            "cast_lm_head_to_fp32=True: TRL makes the LM head's weight fp32 while the hidden states stay in the "
            "model's dtype; SDPO's chunked LM head multiplies them directly (a dtype error with a bf16/fp16 model). "
            "Fix: cast_lm_head_to_fp32=False; SDPO already computes its log-softmax in fp32.")
    if sdpo.grpo_weight == 0.0:
        defaults = {f.name: f.default for f in dataclasses.fields(type(args))} if dataclasses.is_dataclass(args) else {}
        defaults.update(_NEUTRAL)  # off means off, whatever default a patched config class (Unsloth's) declares
        changed = [(name, why) for name, why in GRPO_LOSS_ONLY.items()
                   if name in defaults and getattr(args, name, defaults[name]) != defaults[name]]
        for name, why in changed:
            problems.append(f"{name}={getattr(args, name)!r}: {why}; pure SDPO (SDPOConfig(grpo_weight=0.0)) replaces "
                            "that loss, so it would silently do nothing. Fix: leave it at its default "
                            f"({defaults[name]!r}), or blend GRPO in with SDPOConfig(grpo_weight=lambda > 0), where it "
                            "applies to the GRPO part")
    return problems


def launcher_problem(args, env) -> str | None:
    """Why the requested launcher cannot run SDPO (FSDP, DeepSpeed), or None. `env`: the environment to read."""
    fsdp = getattr(args, "fsdp", None)
    if fsdp or _env_flag(env, "ACCELERATE_USE_FSDP"):
        source = f"GRPOConfig(fsdp={fsdp!r}, fsdp_config={getattr(args, 'fsdp_config', None)!r})" if fsdp else \
            "ACCELERATE_USE_FSDP=true (an `accelerate launch` FSDP config)"
        return _launcher_message(f"FSDP ({source})", _SHARDED)
    ds, plugin = getattr(args, "deepspeed", None), getattr(args, "deepspeed_plugin", None)
    if ds or plugin is not None or _env_flag(env, "ACCELERATE_USE_DEEPSPEED"):
        return _deepspeed_message(zero_stage(ds, plugin, env), ds)
    return None


def refuse_unsupported_state(trainer) -> None:
    """After GRPOTrainer.__init__: refuse what the built accelerator and model reveal (the checks above, again, for
    launchers configured in ways the arguments do not show; a MoE model whose router logits cannot be read)."""
    from accelerate.utils import DistributedType

    state = trainer.accelerator.state
    kind = getattr(state, "distributed_type", None)
    if trainer.is_fsdp_enabled or kind == DistributedType.FSDP:
        raise ValueError(_launcher_message(f"FSDP (the accelerator runs {kind})", _SHARDED))
    if trainer.is_deepspeed_enabled or kind == DistributedType.DEEPSPEED:
        raise ValueError(_deepspeed_message(zero_stage(None, getattr(state, "deepspeed_plugin", None), {}), None))
    if trainer.sdpo.enabled and getattr(trainer, "aux_loss_enabled", False):
        causal_lm = causal_lm_of(trainer.accelerator.unwrap_model(trainer.model))
        backbone = causal_lm.base_model
        text = causal_lm.config.get_text_config()
        experts = _num_experts(text)
        records = "router_logits" in (getattr(backbone, "_can_record_outputs", None) or {})
        if not (records and experts and getattr(text, "num_experts_per_tok", None)):
            raise ValueError(
                f"{type(causal_lm).__name__} is a mixture-of-experts model whose router logits sdpo_lite cannot read "
                f"(its backbone {type(backbone).__name__} does not record 'router_logits', or its config lacks "
                "num_experts / num_experts_per_tok), so its load-balancing loss would be silently dropped. Fix: "
                "GRPOConfig(router_aux_loss_coef=0.0) to train without it.")


def zero_stage(ds, plugin, env) -> int | None:
    """The DeepSpeed ZeRO stage from a DeepSpeedPlugin, a config dict / JSON string / JSON file, or accelerate's
    environment (ACCELERATE_DEEPSPEED_ZERO_STAGE); None when unknown ('auto', unreadable)."""
    import json

    stage = getattr(plugin, "zero_stage", None)
    if stage is None and isinstance(ds, str):
        try:
            if ds.lstrip().startswith("{"):
                ds = json.loads(ds)
            else:
                with open(ds, encoding="utf-8") as f:
                    ds = json.load(f)
        except (OSError, ValueError):
            ds = None
    if stage is None and isinstance(ds, dict):
        stage = (ds.get("zero_optimization") or {}).get("stage")
    if stage is None:
        stage = env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE")
    try:
        return int(stage)
    except (TypeError, ValueError):
        return None


def _deepspeed_message(stage, ds) -> str:
    where = f"DeepSpeed ZeRO-{stage}" if stage is not None else "DeepSpeed (ZeRO stage unknown)"
    if ds is not None:
        where += f" (GRPOConfig(deepspeed={ds!r}))"
    if stage == 3:
        why = ("partitions every parameter across processes: SDPO's loss reads lm_head.weight directly and its teacher "
               "is a deep copy of the student, so both would hold empty shards, not weights")
    else:
        why = ("keeps full parameters on every process, so nothing is known to break, but sdpo_lite has never been "
               "run under DeepSpeed (its loss scaling over accumulation steps, the EMA teacher's reads of the "
               "student's weights and the forward keyword the student pass uses were only tested under DDP); it is "
               "refused rather than left to train differently unnoticed")
    return _launcher_message(where, why)


def _launcher_message(what: str, why: str) -> str:
    return (f"SDPOTrainer cannot run under {what}: it {why}. {_SUPPORTED_LAUNCHERS}. Fix: launch without FSDP or "
            "DeepSpeed; to save memory use LoRA (PEFT: the teacher is then a second adapter, not a second model), "
            "gradient checkpointing, or a smaller per_device_train_batch_size with more gradient_accumulation_steps. "
            "(For plain GRPO under FSDP/DeepSpeed, use trl.GRPOTrainer itself.)")


def _env_flag(env, name: str) -> bool:
    return str(env.get(name, "")).strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def recording_router_logits(model, enabled: bool):
    """Collect the router logits a mixture-of-experts backbone produces in the forward passes run inside.

    transformers records them itself when the config says output_router_logits=True, and returns them on the
    backbone's output; SDPO's student pass calls the backbone directly (no LM head), so the flag is switched on for
    the duration and the logits are read off that output by a forward hook. Yields the list they land in.
    """
    logits: list = []
    if not enabled:
        yield logits
        return
    backbone = causal_lm_of(model).base_model
    config = backbone.config
    before = getattr(config, "output_router_logits", False)
    handle = backbone.register_forward_hook(
        lambda module, args, output: logits.extend(getattr(output, "router_logits", None) or ()))
    config.output_router_logits = True
    try:
        yield logits
    finally:
        config.output_router_logits = before
        handle.remove()


def load_balancing_loss(router_logits: list, model, attention_mask) -> torch.Tensor:
    """The MoE load-balancing loss of one forward pass, computed as TRL's fused LM head does (Mixtral's function,
    which every MoE family shares; padding excluded through the attention mask)."""
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    if not router_logits:
        raise RuntimeError("the mixture-of-experts student pass recorded no router logits; set "
                           "GRPOConfig(router_aux_loss_coef=0.0) and report your model and transformers version")
    text = causal_lm_of(model).config.get_text_config()
    return load_balancing_loss_func(tuple(router_logits), _num_experts(text), text.num_experts_per_tok, attention_mask)


def _num_experts(text_config) -> int | None:
    """Experts per MoE layer: `num_experts` (Qwen-MoE) or `num_local_experts` (Mixtral)."""
    return getattr(text_config, "num_experts", None) or getattr(text_config, "num_local_experts", None)
