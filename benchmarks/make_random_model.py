#!/usr/bin/env python3
"""Build a random-weight model at Qwen2.5-0.5B-Instruct's shape, for timing and memory checks without the Hub.

    .venv/bin/python benchmarks/make_random_model.py OUT_DIR [--dtype bfloat16]

Same architecture numbers as Qwen2.5-0.5B (hidden 896, 24 layers, 14 query / 2 key-value heads, MLP 4864, tied
151,936-token embeddings), so the LM head, the part SDPO's top-k pass touches, costs what it costs there. The
tokenizer is the course's tiny one (ids above its 512 tokens decode to nothing), which is fine for timings.
"""
import argparse

import torch
from transformers import AutoModelForCausalLM, Qwen2Config

from sdpo_lite.course.models import load_model

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--dtype", default="bfloat16")
a = ap.parse_args()
_, tok = load_model("tiny")
config = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                     num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                     tie_word_embeddings=True, rope_theta=1000000.0, rms_norm_eps=1e-6,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, a.dtype))
model.generation_config.eos_token_id = tok.eos_token_id
model.generation_config.pad_token_id = tok.pad_token_id
model.save_pretrained(a.out)
tok.save_pretrained(a.out)
print(f"saved {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters to {a.out}")
