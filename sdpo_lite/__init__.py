"""sdpo_lite: Self-Distillation Policy Optimization (Hübotter et al., 2026) on TRL's GRPOTrainer.

The light modules (config, reprompt, loss, rewards, sandbox, data) import without TRL; the trainer,
which pulls in TRL and transformers, is loaded the first time you touch ``SDPOTrainer``.
"""
from sdpo_lite.config import SDPOConfig

__all__ = ["SDPOConfig", "SDPOTrainer"]
__version__ = "0.1.0"


def __getattr__(name):  # PEP 562: import the heavy trainer only when it is asked for
    if name == "SDPOTrainer":
        from sdpo_lite.trainer import SDPOTrainer

        return SDPOTrainer
    raise AttributeError(f"module 'sdpo_lite' has no attribute {name!r}")
