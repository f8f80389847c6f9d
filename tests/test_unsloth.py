"""sdpo_lite.course.unsloth and the import-order-proof trainer base (sdpo_lite.compat).

CI has no GPU and no Unsloth, so three kinds of checks live here:
  * the CPU fallback of `load_for_sdpo` for real (tiny model, transformers + PEFT);
  * the Unsloth path's calls against a recording API stand-in (which arguments reach FastLanguageModel);
  * both import orders of `import unsloth` + PatchFastRL and sdpo_lite, in fresh subprocesses, with the stand-in in
    tests/stand_ins/unsloth (it rewrites trl's GRPOTrainer as the real package does on a GPU; see its docstring). Set
    SDPO_UNSLOTH_PYTHON to an interpreter that has the real package to run the same checks against it.
"""
import importlib.machinery
import json
import os
import subprocess
import sys
import types

import pytest
import torch
from conftest import ROOT

import sdpo_lite.course.unsloth as su
from sdpo_lite import compat
from sdpo_lite import trainer as trainer_module
from sdpo_lite.teacher import TEACHER_ADAPTER

SCRIPT = ROOT / "tests" / "scripts" / "unsloth_order.py"
STAND_IN = ROOT / "tests" / "stand_ins"
GENUINE = {"trl.trainer.grpo_trainer.GRPOTrainer", f"{compat.GENUINE_COPY}.GRPOTrainer"}
# trl.GRPOTrainer's MRO after the real unsloth 2026.10.9 patched it (measured on a CPU with SDPO_UNSLOTH_PYTHON);
# the stand-in must reproduce it.
UNSLOTH_MRO = ["UnslothGRPOTrainer.UnslothGRPOTrainer", "UnslothGRPOTrainer._UnslothGRPOTrainer",
               "trl.trainer.base_trainer._BaseTrainer", "transformers.trainer.Trainer", "builtins.object"]


# --------------------------------------------------------------------------------------------------
# Loading: the CPU fallback, for real
# --------------------------------------------------------------------------------------------------
def lora_weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_A" in n}


def test_fallback_loads_lora_with_the_unsloth_recipe(capsys):
    rng = torch.random.get_rng_state()
    loaded = su.load_for_sdpo("tiny", precision="fp32")
    assert torch.equal(torch.random.get_rng_state(), rng)  # the adapters' seed does not touch the global RNG
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith("Unsloth not used: no CUDA GPU")  # ONE line, with why
    assert loaded.path == "peft" and "no CUDA GPU" in loaded.reason and loaded.name == "tiny"
    config = loaded.model.peft_config["default"]
    assert set(config.target_modules) == set(su.LORA_TARGETS) and len(su.LORA_TARGETS) == 7
    assert config.r == 16 and config.lora_alpha == 32 and config.lora_dropout == 0.0
    trainable = [n for n, p in loaded.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)  # the base is frozen
    model, tokenizer = loaded  # unpacks like load_model
    assert model is loaded.model and tokenizer.pad_token is not None
    assert "rank 16" in loaded.describe() and "PEFT" in loaded.describe()
    again = su.load_for_sdpo("tiny", precision="fp32", verbose=False)
    for name, weight in lora_weights(loaded.model).items():
        torch.testing.assert_close(lora_weights(again.model)[name], weight)  # reproducible init


def test_requiring_unsloth_without_a_gpu_names_the_reason():
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        su.load_for_sdpo("tiny", use_unsloth=True, verbose=False)


def test_use_unsloth_false_never_imports_it(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "unsloth", None)  # importing it would raise
    loaded = su.load_for_sdpo("tiny", precision="fp32", device="cpu", use_unsloth=False)
    assert loaded.path == "peft" and loaded.reason == "use_unsloth=False"
    assert "use_unsloth=False" in capsys.readouterr().out


def test_gpu_without_the_package_falls_back_and_says_so(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "unsloth", None)  # find_spec -> None: "not installed"
    assert su.unsloth_status() == (False, "the unsloth package is not installed (pip install unsloth)")
    assert su.import_unsloth() is None


class RecordingUnsloth(types.ModuleType):
    """An API stand-in for `unsloth`: records what load_for_sdpo asks of it, returns a tiny model on the CPU."""

    def __init__(self):
        super().__init__("unsloth")
        self.__spec__ = importlib.machinery.ModuleSpec("unsloth", None)
        self.calls = []
        recorder = self

        class FastLanguageModel:
            @staticmethod
            def from_pretrained(**kwargs):
                from sdpo_lite.course.models import load_model

                recorder.calls.append(("from_pretrained", kwargs))
                return load_model(kwargs["model_name"], precision="fp32", device="cpu", verbose=False)

            @staticmethod
            def get_peft_model(model, **kwargs):
                from peft import LoraConfig, get_peft_model

                recorder.calls.append(("get_peft_model", kwargs))
                keep = {k: kwargs[k] for k in ("r", "lora_alpha", "lora_dropout", "bias", "target_modules")}
                return get_peft_model(model, LoraConfig(**keep))

        def PatchFastRL(algorithm=None, FastLanguageModel=None):  # noqa: N802
            recorder.calls.append(("PatchFastRL", {"algorithm": algorithm}))

        self.FastLanguageModel, self.PatchFastRL = FastLanguageModel, PatchFastRL


def test_unsloth_path_asks_for_4bit_rank_16_and_unsloth_checkpointing(monkeypatch, capsys):
    fake = RecordingUnsloth()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "unsloth", fake)
    loaded = su.load_for_sdpo("tiny", max_seq_length=512)
    calls = dict(fake.calls)
    assert [c[0] for c in fake.calls] == ["PatchFastRL", "from_pretrained", "get_peft_model"]
    assert calls["PatchFastRL"] == {"algorithm": "GRPO"}
    assert calls["from_pretrained"]["load_in_4bit"] is True and calls["from_pretrained"]["max_seq_length"] == 512
    assert os.path.isdir(calls["from_pretrained"]["model_name"])  # builtin names go to Unsloth as local folders
    peft_kwargs = calls["get_peft_model"]
    assert peft_kwargs["r"] == 16 and peft_kwargs["lora_alpha"] == 32
    assert peft_kwargs["target_modules"] == list(su.LORA_TARGETS)
    assert peft_kwargs["use_gradient_checkpointing"] == "unsloth"
    assert loaded.path == "unsloth" and "Unsloth: tiny in 4 bit" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# Optimiser, training arguments, reports
# --------------------------------------------------------------------------------------------------
def test_optimiser_choice(monkeypatch):
    assert su.choose_optimizer()[0] == "adamw_torch"  # this machine: no GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(su, "_installed", lambda name: name == "bitsandbytes")
    assert su.choose_optimizer()[0] == "adamw_8bit"
    monkeypatch.setattr(su, "_installed", lambda name: False)
    name, why = su.choose_optimizer()
    assert name == "adamw_torch" and "bitsandbytes is not installed" in why


def test_grpo_overrides_are_valid_grpo_arguments():
    from trl import GRPOConfig

    overrides = su.grpo_overrides()
    args = GRPOConfig(output_dir="/tmp/sdpo_overrides", use_cpu=True, bf16=False, report_to=[], **overrides)
    assert args.optim == "adamw_torch" and args.gradient_checkpointing is True  # TRL's default: the memory saver
    on_unsloth = su.grpo_overrides(su.LoadedModel(None, None, "unsloth", "test", "m", 16))
    assert on_unsloth["gradient_checkpointing"] is False  # Unsloth's own checkpointing stays in charge


def test_memory_report_on_cpu(capsys):
    report = su.memory_report("here")
    assert report["kind"] == "process RSS" and 0 < report["now_bytes"] <= report["peak_bytes"] * 1.05
    assert capsys.readouterr().out.startswith("here: process RSS ")
    # "now" follows an allocation. In a fresh process: in this one, memory that earlier tests freed can still be
    # resident in the allocator's pool and serve the allocation without the RSS growing (seen in CI).
    code = ("import json, torch; from sdpo_lite.course.unsloth import memory_report as m; a = m('a')['now_bytes']; "
            "big = torch.ones(64, 1024, 1024); b = m('b')['now_bytes']; del big; c = m('c'); "
            "print(json.dumps([a, b, c['now_bytes'], c['peak_bytes']]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    before, during, after, peak = json.loads(out.stdout.strip().splitlines()[-1])
    assert during > before + 200 * 2 ** 20  # 256 MiB more, touched
    assert after < peak - 200 * 2 ** 20  # freed again: "now" is not the peak


def test_trainer_base_report_in_a_plain_process():
    text = su.trainer_base_report()
    assert "builds on trl.trainer.grpo_trainer.GRPOTrainer" in text and "(as shipped)" in text


# --------------------------------------------------------------------------------------------------
# Recovering TRL's own GRPOTrainer, in this process
# --------------------------------------------------------------------------------------------------
def test_pristine_trl_gives_its_own_class():
    import trl.trainer.grpo_trainer as grpo

    assert compat.genuine_grpo_trainer() is grpo.GRPOTrainer
    assert trainer_module.SDPOTrainer.__mro__[1] is grpo.GRPOTrainer


def test_a_replaced_class_is_bypassed_by_a_fresh_copy(monkeypatch):
    import trl.trainer.grpo_trainer as grpo

    original = grpo.GRPOTrainer
    impostor = type("UnslothGRPOTrainer", (original.__mro__[1],), {"__module__": "UnslothGRPOTrainer"})
    monkeypatch.setattr(grpo, "GRPOTrainer", impostor)
    monkeypatch.delitem(sys.modules, compat.GENUINE_COPY, raising=False)  # removed again afterwards
    recovered = compat.genuine_grpo_trainer()
    assert recovered not in (impostor, original)
    assert (recovered.__module__, recovered.__qualname__) == (compat.GENUINE_COPY, "GRPOTrainer")
    assert recovered.__mro__[1:] == original.__mro__[1:]  # the same _BaseTrainer, Trainer, ...
    assert recovered._compute_loss.__code__.co_code == original._compute_loss.__code__.co_code
    assert compat.genuine_grpo_trainer() is recovered  # loaded once


def test_no_copy_possible_fails_with_the_fix(monkeypatch, tmp_path):
    import trl.trainer
    import trl.trainer.grpo_trainer as grpo

    (tmp_path / "grpo_trainer.py").write_text("raise RuntimeError('not TRL')\n")
    monkeypatch.setattr(grpo, "GRPOTrainer", type("UnslothGRPOTrainer", (), {}))
    monkeypatch.setattr(trl.trainer, "__file__", str(tmp_path / "__init__.py"))
    monkeypatch.delitem(sys.modules, compat.GENUINE_COPY, raising=False)
    with pytest.raises(ImportError, match=r"import sdpo_lite\.trainer BEFORE `import unsloth`") as err:
        compat.genuine_grpo_trainer()
    assert "not TRL" in str(err.value) and compat.GENUINE_COPY not in sys.modules


# --------------------------------------------------------------------------------------------------
# Both import orders, in fresh processes: the stand-in (always) and the real package (when available)
# --------------------------------------------------------------------------------------------------
def run_order(order, tmp_path, python=sys.executable, stand_in=True, real_cpu=False):
    out = tmp_path / f"{order}.json"
    paths = [str(STAND_IN)] if stand_in else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, str(ROOT)]), "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "SDPO_REAL_UNSLOTH_CPU": "1" if real_cpu else "0"}
    proc = subprocess.run([python, str(SCRIPT), order, str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def check_sdpo_trained_on_trls_class(result, patched: bool):
    assert result["mro"][1] in GENUINE and not any("Unsloth" in c for c in result["mro"])
    if patched:  # Unsloth's class is in place, and an override of _compute_loss would never run under it
        assert result["trl_grpo_trainer"] == "UnslothGRPOTrainer.UnslothGRPOTrainer"
        assert result["trl_mro"] == UNSLOTH_MRO and result["patched_compute_loss_calls_override"] is False
    assert result["path"] == "peft" and result["global_step"] == 2
    assert result["teacher_uses_adapter"] and result["teacher_module_is_none"] and result["teacher_updates"] == 2
    assert result["teacher_adapter"] == TEACHER_ADAPTER
    assert result["frac_with_teacher"] == [1.0, 1.0]
    assert all(d is not None and d > 0 for d in result["distill_loss"])  # the SDPO loss ran, not GRPO's
    assert result["losses"] == pytest.approx(result["distill_loss"])
    assert result["lora_changed"]


@pytest.fixture(scope="module")
def stand_in_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("unsloth_order")
    return {order: run_order(order, tmp) for order in ("unsloth-first", "sdpo-first", "no-unsloth")}


@pytest.mark.slow
@pytest.mark.parametrize("order", ["unsloth-first", "sdpo-first"])
def test_import_order_with_the_stand_in(stand_in_runs, order):
    result = stand_in_runs[order]
    assert result["stand_in"] and result["config_class"].endswith("UnslothGRPOConfig")
    check_sdpo_trained_on_trls_class(result, patched=True)
    expected_base = "trl.trainer.grpo_trainer.GRPOTrainer" if order == "sdpo-first" else \
        f"{compat.GENUINE_COPY}.GRPOTrainer"  # captured before the patch / recovered after it
    assert result["mro"][1] == expected_base


@pytest.mark.slow
def test_every_order_trains_the_same_step(stand_in_runs):
    reference = stand_in_runs["no-unsloth"]
    assert reference["unsloth"] is None and reference["trl_grpo_trainer"] == "trl.trainer.grpo_trainer.GRPOTrainer"
    check_sdpo_trained_on_trls_class(reference, patched=False)
    for order in ("unsloth-first", "sdpo-first"):
        assert stand_in_runs[order]["losses"] == pytest.approx(reference["losses"], rel=1e-6)


REAL = os.environ.get("SDPO_UNSLOTH_PYTHON")


@pytest.mark.slow
@pytest.mark.skipif(not REAL, reason="set SDPO_UNSLOTH_PYTHON to an interpreter with unsloth (see docs/unsloth.md)")
def test_import_order_with_the_real_unsloth(tmp_path):
    has_cuda = subprocess.run([REAL, "-c", "import torch; print(torch.cuda.is_available())"], capture_output=True,
                              text=True).stdout.strip() == "True"
    runs = {order: run_order(order, tmp_path, python=REAL, stand_in=False, real_cpu=not has_cuda)
            for order in ("unsloth-first", "sdpo-first")}
    for result in runs.values():
        assert not result["stand_in"] and "site-packages" in result["unsloth"]
        check_sdpo_trained_on_trls_class(result, patched=True)
    assert runs["unsloth-first"]["losses"] == pytest.approx(runs["sdpo-first"]["losses"], rel=1e-6)


def test_importing_the_module_leaves_trl_for_later():
    """import_unsloth() must be able to run before trl, transformers and peft are imported (Unsloth asks for that)."""
    code = ("import sys, sdpo_lite.course.unsloth; "
            "print([m for m in ('trl', 'transformers', 'peft') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
