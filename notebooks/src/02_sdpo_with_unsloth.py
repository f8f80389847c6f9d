# %% [markdown] id="nb02-00"
# # 02 · SDPO with Unsloth: 4-bit QLoRA, an 8-bit optimiser and `<think>` tags
#
# [Unsloth](https://github.com/unslothai/unsloth) makes fine-tuning fit on small GPUs: the frozen base weights are
# stored in **4 bit**, only small **LoRA** adapters train, hand-written kernels and its own gradient checkpointing cut
# memory and time, and an **8-bit AdamW** keeps the optimiser state small. This notebook trains SDPO that way on a
# task with **thinking**: the model reasons inside `<think>...</think>` and then answers "even" or "odd".
#
# Two things to learn beyond notebook 01:
#
# * **Under LoRA, the self-teacher is an adapter.** The EMA teacher is a second LoRA adapter on the same (4-bit)
#   base, not a second copy of the model: the teacher costs a few megabytes.
# * **Thinking stays out of the teacher's demonstrations.** A peer's successful answer is shown to the teacher
#   *without* its `<think>` block (`SDPOConfig.thinking_tag`), as the official code does: the teacher should learn what a good
#   answer is, not copy one particular chain of thought.
#
# **Status: the GPU path has not run on a T4, or on any GPU, yet.** Everything saved below is a CPU run; the GPU
# settings are a starting point until a rehearsal on a GPU measures them (issue 17, [docs/gpu.md](../docs/gpu.md)).
#
# **You will**: load a LoRA model the Unsloth way (or its CPU stand-in), see the teacher's demonstration lose its
# thinking, train the GRPO + SDPO blend and a GRPO-only control, and write the thinking-stripping rule yourself.
# **Prerequisites**: notebook 01 (the self-teacher, the distillation loss, `train_run`).
#
# **Where this runs.** With a CUDA GPU and Unsloth installed (Colab's free T4: the setup cell installs it), the model
# is Qwen2.5-0.5B-Instruct through Unsloth. Without a GPU (or without Unsloth) the same recipe runs with plain
# transformers + PEFT: LoRA of the same rank on the same layers, full-precision base weights, the embedded
# SmolLM2-135M-Instruct, about 3 minutes on 2 CPU cores. The saved outputs below come from such a CPU run; the GPU
# path has not been run yet (see [docs/unsloth.md](../docs/unsloth.md)).

# %% id="nb02-01" tags=["setup-cell"]
# The shared setup cell: scripts/notebook_cells.py writes it here when the notebook is built.

# %% id="nb02-02"
# Unsloth first: it patches transformers, peft and trl as they are imported (on a CUDA GPU, when installed).
from sdpo_lite.course.unsloth import import_unsloth, unsloth_status

unsloth = import_unsloth()  # also runs PatchFastRL("GRPO", FastLanguageModel), as Unsloth's GRPO recipes do
print("Unsloth:", "in use" if unsloth else "not used", "-", unsloth_status()[1])

# %% id="nb02-03"
from sdpo_lite import SDPOConfig
from sdpo_lite.course.recipes import choose_profile

PROFILE = None  # None: chosen from the hardware ("cpu", "lowmem", "gpu", "tiny"); or set one by name
profile = choose_profile(PROFILE, task="parity")  # the parity task's settings: thinking needs tokens
print(profile.describe())

# %% [markdown] id="nb02-04"
# ## 1. What Unsloth changes, and what stays
#
# | | without Unsloth (notebook 01) | with Unsloth (this notebook, on a GPU) |
# |---|---|---|
# | base weights | bf16/fp32, trained | 4-bit NF4, frozen |
# | what trains | every weight | LoRA adapters, rank 16, on q/k/v/o/gate/up/down projections |
# | kernels | PyTorch's | Unsloth's for LoRA, RoPE, RMSNorm, the loss |
# | gradient checkpointing | off / transformers' | Unsloth's (activations parked in CPU RAM) |
# | optimiser | AdamW | 8-bit AdamW (bitsandbytes) |
# | SDPO teacher | a full copy of the weights + fp32 EMA shadow | a second LoRA adapter, `sdpo_teacher` |
# | trainer | `SDPOTrainer` on TRL's `GRPOTrainer` | the same |
#
# The last row matters. `import unsloth` replaces `trl.GRPOTrainer` by an `UnslothGRPOTrainer` generated from TRL's
# source, whose loss is Unsloth's own GRPO loss: a subclass of it would silently train GRPO, not SDPO. Unsloth's
# gains live in the model and the optimiser, so `SDPOTrainer` always builds on TRL's own class, whether `sdpo_lite`
# is imported before or after Unsloth (if Unsloth came first, it loads a private copy of TRL's module):

# %% id="nb02-05"
from sdpo_lite.course.unsloth import trainer_base_report

print(trainer_base_report())

# %% [markdown] id="nb02-06"
# ## 2. Load the model: Unsloth, or the same LoRA recipe without it
#
# `load_for_sdpo` tries Unsloth (`FastLanguageModel.from_pretrained(load_in_4bit=True)` and `get_peft_model` with
# rank 16 and `use_gradient_checkpointing="unsloth"`); where it cannot, it says why in one line and loads the same
# adapters with transformers + PEFT. `memory_report` prints GPU memory (on a GPU) or the process's resident memory
# (on a CPU, where the peak covers the whole kernel's life) before and after.

# %% id="nb02-07" tags=["nbval-ignore-output"]
from sdpo_lite.course.unsloth import memory_report

memory_report("before loading", reset_peak=True);

# %% id="nb02-08"
from sdpo_lite.course.unsloth import load_for_sdpo

loaded = load_for_sdpo(profile.model_name, max_seq_length=1024)
print(loaded.describe())
model, tokenizer = loaded

# %% id="nb02-09" tags=["nbval-ignore-output"]
memory_report("after loading");

# %% [markdown] id="nb02-10"
# ## 3. The task: even or odd, thinking inside `<think>` tags
#
# 64 training and 100 held-out three-digit numbers (`data/parity/`), half even and half odd, so always answering
# "even" scores exactly 50%. The checker reads the last "even"/"odd" **after** `</think>`; a reply without a think
# block is read whole (a small model may never write one), and an unclosed `<think>` has no answer yet.
#
# The reward's score is that answer's correctness. Its feedback, which only the self-teacher reads, says what went
# wrong: the right parity and why (the last digit), what the model answered, and whether the think block was
# missing or never closed.

# %% id="nb02-11"
from sdpo_lite.course.tasks import load_task, to_conversational
from sdpo_lite.course.rewards import parity_reward

train = to_conversational(load_task("parity", "train"))
print(len(train), "training problems, e.g.", train[0]["prompt"][0]["content"], "->", train[0]["expected"])
question = "Is 347 even or odd? Think inside <think></think>, then answer with one word: even or odd."
attempts = ["<think>347 ends in 7, an odd digit.</think> odd", "The answer is even.", "<think>347 is a big number"]
for attempt, out in zip(attempts, parity_reward([question] * 3, attempts, expected=["odd"] * 3)):
    print(f"\n{attempt!r}\n  score {out['score']}  feedback {out['feedback']!r}")

# %% [markdown] id="nb02-12"
# ## 4. The teacher sees the answer, not the thinking
#
# Take one group of three rollouts: the first succeeded (with a think block), the other two failed. The trainer's own
# reprompting (`plan_teachers`) gives each failure the success as a demonstration, and with `thinking_tag="think"`
# (the default, as in the official code) the `<think>...</think>` part is cut from it first. Below, the teacher
# prompt of the second rollout: the highlighted demonstration is just "odd".

# %% id="nb02-13"
from sdpo_lite.course.rollouts import teacher_records
from sdpo_lite.course.widgets import show_teacher_prompt

sdpo_config = SDPOConfig(thinking_tag="think", grpo_weight=profile.grpo_weight, alpha=0.5, distillation_topk=100,
                         ema_tau=0.05)
scored = parity_reward([question] * 3, attempts, expected=["odd"] * 3)
chat = [{"role": "user", "content": question}]
records = teacher_records(chat, attempts, [o["score"] for o in scored], [o["feedback"] for o in scored], tokenizer,
                          sdpo_config)
for r in records:
    print(f"score {r.score}: demonstration used {r.demo_used}, thinking stripped {r.thinking_stripped}")
show_teacher_prompt(records[1], static=True)

# %% [markdown] id="nb02-14"
# ## 5. Where we start
#
# Greedy accuracy on the 100 held-out numbers. LoRA's `B` matrices start at zero, so this is the base model.

# %% id="nb02-15"
from sdpo_lite.course.tasks import parity_answer
from sdpo_lite.course.evaluate import accuracy, record_result

def parity_accuracy():
    result = accuracy(model, tokenizer, "parity", "heldout", max_new_tokens=profile.max_completion_length,
                      limit=profile.eval_limit, progress=False)
    answers = [parity_answer(completion) for _, completion, _, _ in result.examples]
    print(result, "| answers:", {a: answers.count(a) for a in ("even", "odd", None)},
          "| with a think block:", sum("</think>" in c for _, c, _, _ in result.examples))
    return result

before = parity_accuracy()
record_result("parity_heldout_before", round(before.accuracy, 4))
for prompt, completion, expected, ok in before.examples[:3]:
    print(f"  {expected:>4} {'ok ' if ok else 'bad'} {completion!r}")

# %% [markdown] id="nb02-16"
# ## 6. Train with SDPO (blended with GRPO) on the LoRA adapters
#
# One `train_run` from `sdpo_lite.course.recipes`, as in notebook 01, with three differences: the model is the LoRA
# model loaded above (not fresh weights), the optimiser comes from `grpo_overrides` (8-bit AdamW on a GPU with
# bitsandbytes, PyTorch's AdamW otherwise; TRL's gradient checkpointing off, since Unsloth has its own), and the
# learning rate is LoRA's, ten times notebook 01's.
#
# The loss is a blend of GRPO and SDPO (notebook 01, equation 4); the weight 0.9 GRPO + 0.1 SDPO
# (`grpo_weight=0.9`) is ours, from the addition sweep in the README, not the paper's. A blend, because pure
# SDPO hurt this 135M model on parity: in one run each with these settings (measured before a fix that keeps a
# successful rollout's own feedback away from its teacher; not re-run since), pure SDPO took held-out accuracy from
# 43% to 11% (learning rate 1e-4), 29% (3e-5) and 43%, unchanged (1e-5). Set `grpo_weight=0.0` to see it yourself. The
# training log is hidden from the comparison of outputs (it differs from run to run).

# %% id="nb02-17" tags=["nbval-ignore-output"]
from sdpo_lite.course.recipes import train_run
from sdpo_lite.course.unsloth import choose_optimizer, grpo_overrides

print("optimiser:", *choose_optimizer())
memory_report("before training", reset_peak=True)
run = train_run("blend", profile, parity_reward, sdpo=sdpo_config, model_and_tokenizer=(model, tokenizer),
                task="parity", evaluate=False, disable_tqdm=True, keep="model", **grpo_overrides(loaded))
memory_report("after training")
teacher = run.trainer.teacher
print(f"{run.seconds / 60:.1f} min; teacher = LoRA adapter {teacher.uses_adapter}, "
      f"full copy {teacher.module is not None}, {teacher.updates} EMA updates")

# %% [markdown] id="nb02-18"
# ## 7. What happened

# %% id="nb02-19" tags=["nbval-ignore-output"]
after = parity_accuracy()
record_result("parity_heldout_after_blend", round(after.accuracy, 4))
print(f"held-out accuracy: {before.accuracy:.0%} before, {after.accuracy:.0%} after {profile.steps} steps")

# %% [markdown] id="nb02-20"
# What the saved CPU run shows (one seed; yours may differ by several points):
#
# - **Before**, SmolLM2-135M answered "even" to 86 of the 100 numbers and gave no answer to the other 14: 43%, below
#   the 50% of always saying "even", because its non-answers count as wrong.
# - **After** 24 blended steps it answers every number, "odd" 72 times and "even" 28 times: 58%. With 100 problems
#   that is within noise of a coin flip (about ±10 points), so read it as "stopped saying even to everything", not as
#   "learned the last-digit rule". Twenty-four steps of 8 samples show the model 24 numbers; a 135M model does not
#   find the rule from that.
# - **Pure SDPO hurt** (section 6): in those runs the student drifted to replies that restate the number without a
#   parity ("The answer is 543.", "The correct answer is indeed 205."); at learning rate 1e-4, 82 of the 100
#   held-out replies had no answer. GRPO's share of the blend rewards the replies that do answer correctly, which
#   keeps the format; notebook 01 found the blend ahead of pure SDPO on addition too.
# - **Thinking**: SmolLM2 never wrote a `<think>` block, before or after, so no real demonstration had thinking to
#   strip (section 4 shows what happens when one does). Expect that to change with Qwen2.5-0.5B on a GPU, where the
#   256-token budget leaves room to think.
# - **Memory**: on the CPU the LoRA model trained 4.9M of 139M parameters and the teacher was an adapter (no second
#   model). The process's RSS grew from about 0.5 GiB after loading to about 1.1 GiB after the first evaluation and
#   1.7 GiB after training (section 6 prints it; not broken down here); the GPU's 4-bit numbers are pending.

# %% [markdown] id="nb02-21"
# ## 8. Inside the last step
#
# `trainer.last_rollouts` holds the last step's rollouts with their scores, feedback and teacher prompts, as in
# notebook 01. `thinking stripped` counts the demonstrations that lost a think block (none when the model never
# writes one).

# %% id="nb02-22" tags=["nbval-ignore-output"]
from sdpo_lite.course.reports import print_rollouts
from sdpo_lite.course.widgets import browse_rollouts

last = run.trainer.last_rollouts
print(f"{sum(r.teacher_prompt is not None for r in last)} of {len(last)} rollouts had a teacher, "
      f"{sum(r.demo_used for r in last)} a demonstration, {sum(r.thinking_stripped for r in last)} thinking stripped")
print_rollouts(last, limit=2)
show_teacher_prompt(next((r for r in last if r.teacher_prompt), last[0]), static=True)

# %% id="nb02-23" tags=["nbval-ignore-output"]
browse_rollouts(last)  # widget: pick a group, then a rollout

# %% [markdown] id="nb02-25"
# ## 9. A control: GRPO alone, same adapters, same steps
#
# Is the blend's change SDPO's doing, or would GRPO alone have done it? The same LoRA recipe, trained with
# `SDPOConfig(enabled=False)` from the same base weights, the same seed and the same 24 steps. First the blend's
# model goes (a notebook must not hold two trained models at once: a T4 has 15 GB).

# %% id="nb02-28" tags=["nbval-ignore-output"]
from sdpo_lite.course.recipes import release_memory

run.accuracy = after.accuracy  # the figure below reads it
del model, loaded, teacher, last
run.trainer = run.model = None
release_memory()
loaded = load_for_sdpo(profile.model_name, max_seq_length=1024)
grpo_run = train_run("GRPO", profile, parity_reward, sdpo=SDPOConfig(enabled=False), task="parity",
                     model_and_tokenizer=tuple(loaded), disable_tqdm=True, **grpo_overrides(loaded))
record_result("parity_heldout_after_grpo", round(grpo_run.accuracy, 4))
print(f"held-out accuracy: {before.accuracy:.0%} before; after {profile.steps} steps: blend {run.accuracy:.0%}, "
      f"GRPO alone {grpo_run.accuracy:.0%}")

# %% id="nb02-29" tags=["nbval-ignore-output"]
from sdpo_lite.course.reports import plot_comparison

plot_comparison([run, grpo_run], before.accuracy);

# %% [markdown] id="nb02-30"
# Read the right panel with its noise in mind: one seed and 100 held-out numbers, so two runs within about 10 points
# of each other show no measurable difference. The left panel is the training success of sampled replies, step by
# step. On this task at this size the question the control answers is narrow: whether the blend's 0.1 of SDPO
# changed the outcome of 24 steps at all.
#
# ## 10. Try it yourself: the demonstration without the thinking
#
# Write the rule of section 4 yourself. `without_thinking(text)` returns a peer's reply with every
# `<think>...</think>` block removed (blocks can span lines, and there may be more than one), then stripped of
# surrounding whitespace. An opened block that never closes is not a block: leave the reply as it is. Then run the
# check (stuck? `show_solution("without_thinking")`). Expected: your function agrees with the trainer's own
# `sdpo_lite.reprompt.strip_thinking` on the five cases the check prints.

# %% id="nb02-26"
def without_thinking(text: str) -> str:
    raise NotImplementedError("fill in without_thinking")  # hint: re.sub with a non-greedy pattern and re.DOTALL

# %% id="nb02-27"
from sdpo_lite.course.exercises import check, show_solution

check("without_thinking", without_thinking)

# %% [markdown] id="nb02-24"
# ## 11. On a GPU
#
# With a CUDA GPU the setup cell installs `unsloth`, `import_unsloth()` imports it before trl, and `load_for_sdpo`
# takes the 4-bit path; the profile becomes 100 steps of 4 prompts x 8 generations with 256 tokens, room to think.
# None of that has been run yet: the GPU numbers of this notebook are pending, and the GPU profile's settings are a
# starting point, not a tuned recipe. [docs/unsloth.md](../docs/unsloth.md) lists what is verified (the import order,
# against the real Unsloth package on a CPU; the LoRA teacher; the CPU fallback) and what is not (4-bit training,
# Unsloth's kernels under SDPO's teacher adapter, the 8-bit optimiser, memory).
#
# ## Summary
#
# - Unsloth's savings are in the model (4-bit base, LoRA kernels, gradient checkpointing) and the optimiser (8-bit);
#   SDPO keeps TRL's own trainer, in whichever order you import things.
# - Under LoRA the EMA teacher is a second adapter on the same base: no second model in memory.
# - With `thinking_tag`, demonstrations show the answer without the peer's reasoning (section 4; you wrote the rule
#   in section 10).
# - A GRPO-only control trained beside the blend (section 9): at one seed and 100 problems, read the two held-out
#   numbers as different only if they are more than about 10 points apart.
