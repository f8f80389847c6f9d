"""sdpo_lite: Self-Distillation Policy Optimization (Hübotter et al., 2026, arXiv 2601.20802) on TRL's GRPOTrainer.

The algorithm, in reading order (each module one concept; none imports the course):
    config.py     SDPOConfig: every knob, the official defaults, validation with errors that name the fix
    reprompt.py   a group of scored rollouts -> teacher prompts (a successful peer's answer, the feedback)
    loss.py       distillation_loss: the alpha-divergence on the student's top-k (+ tail), chunked LM-head passes
    teacher.py    the self-teacher: EMA / frozen / live weights, a full copy or a second LoRA adapter
    trainer.py    SDPOTrainer(GRPOTrainer): the few overrides that wire the four above into TRL
Beside it:
    rewards.py    the reward contract ({"score", "feedback"} per completion), checked; no TRL needed
    supported.py  what the trainer refuses at construction, and the mixture-of-experts router loss
    compat.py     plumbing for TRL / Unsloth / CPU (not SDPO): TRL's own GRPOTrainer, TRL's fused head on the CPU
The course's tooling (tasks and their rewards, the code sandbox, models, recipes, reports, widgets, platforms,
Unsloth loading) is the `sdpo_lite.course` package; it uses the algorithm, never the other way round.

The light modules import without TRL; the trainer, which pulls in TRL and transformers, is loaded the first time
you touch ``SDPOTrainer``.
"""
from sdpo_lite.config import SDPOConfig

__all__ = ["SDPOConfig", "SDPOTrainer"]
__version__ = "0.1.0"


def __getattr__(name):  # PEP 562: import the heavy trainer only when it is asked for
    if name == "SDPOTrainer":
        from sdpo_lite.trainer import SDPOTrainer

        return SDPOTrainer
    raise AttributeError(f"module 'sdpo_lite' has no attribute {name!r}")
