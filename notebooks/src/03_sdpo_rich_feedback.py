# %% [markdown] id="nb03-00"
# # 03 · Rich feedback: SDPO on code, with executed tests
#
# A unit test does not only say *that* a function is wrong. It says `sum_list([1, 2, 3]) expected 6, got 3`, or
# `IndexError: list index out of range (line 2: total = xs[0])`. A scalar reward throws all of that away: GRPO sees
# 0.0 for the off-by-one and 0.0 for the program that deletes your home directory.
#
# SDPO keeps it. The failed attempt goes back to the same model with the error message (or a peer's working
# solution) in its prompt, and that **self-teacher**'s next-token distribution, token by token along the attempt,
# becomes the student's target. This is the setting SDPO was designed for.
#
# It is also where a course can hurt you: the model's code runs on *your* machine (as root, on Colab). So first a
# look at `sdpo_lite.course.sandbox`, which runs every attempt in a separate, locked-down process.
#
# **You will**: see feedback from executed code (and what the sandbox stops), follow the feedback into the teacher's
# prompt on real rollouts, measure what the teacher does with an error message, train twice with the same budget,
# with and without the feedback in the teacher's prompt, and write a terser feedback yourself. About 8 minutes on
# 2 CPU cores.
#
# **Prerequisites**: notebook 01 (the self-teacher, the loss, `train_run`, the `{"score", "feedback"}` contract).

# %% id="nb03-01" tags=["setup-cell"]
# The shared setup cell: scripts/notebook_cells.py writes it here when the notebook is built.

# %% id="nb03-02"
from sdpo_lite import SDPOConfig
from sdpo_lite.course.recipes import choose_profile

PROFILE = None  # None: chosen from the hardware ("cpu", "lowmem", "gpu", "tiny"); or set one by name
profile = choose_profile(PROFILE, task="code")
print(profile.describe())

# %% [markdown] id="nb03-03"
# ## 1. Feedback from executed code
#
# `code_execution_reward` is an ordinary TRL reward function: TRL passes the dataset's `entry_point` and `tests`
# columns as keyword arguments. It pulls the code out of the completion (a fenced block if there is one), runs the
# tests in the sandbox and returns, per completion, `{"score": 1.0 or 0.0, "feedback": "..."}`: the score for GRPO's
# advantages, the text for the teacher. Here are seven hand-written attempts at one task, the last two hostile or
# hopeless:

# %% id="nb03-04"
from sdpo_lite.course.rewards import code_execution_reward

tests = [{"args": [[1, 2, 3]], "expected": 6}, {"args": [[]], "expected": 0}, {"args": [[-5, 5, -2]], "expected": -2}]
attempts = {
    "correct": "def sum_list(xs):\n    return sum(xs)",
    "wrong": "def sum_list(xs):\n    return len(xs)",
    "crashes": "def sum_list(xs):\n    total = xs[0]\n    for x in xs[1:]:\n        total += x\n    return total",
    "syntax error": "def sum_list(xs)\n    return sum(xs)",
    "loops forever": "def sum_list(xs):\n    while True:\n        pass",
    "hostile": "import os\ndef sum_list(xs):\n    os.system('rm -rf ~')\n    return sum(xs)",
    "no code": "The sum of a list is the total of its numbers.",
}
results = code_execution_reward(None, [f"```python\n{a}\n```" for a in attempts.values()], entry_point="sum_list",
                                tests=tests, timeout=2)
for name, out in zip(attempts, results):
    print(f"{name:>13} | score {out['score']} | " + out["feedback"].replace("\n", "\n" + " " * 26))

# %% [markdown] id="nb03-05"
# Each attempt ran in its own process, in parallel (bounded workers), and every one came back: the infinite loop was
# killed from outside after 2 s, and `os.system` was refused before it could start a shell. Layers, each documented
# in `sdpo_lite/sandbox.py` with what it does **not** stop: a separate `python -I` process per run, an external
# wall-clock kill of the whole process tree, CPU/memory/file/process limits, a fresh temporary directory and `HOME`,
# an empty environment (your API keys are not there), a private unprivileged user when you are root, no network
# namespace where `unshare` works, and an audit hook that refuses sockets, subprocesses and writes outside the
# working directory. Results travel over a private pipe, never parsed from the program's output, and are compared by
# value, never through the candidate's `__eq__`. It is a good seat belt, not a VM: see the README's sandbox section.
#
# ## 2. The task and where we start
#
# 43 training and 17 held-out tasks (`data/code/`): list operations, strings, conditionals and loops, each with 3-4
# tests including edge cases. The held-out pass rate is greedy decoding, judged by the same sandboxed tests.

# %% id="nb03-06"
from sdpo_lite.course.tasks import load_task, to_conversational
from sdpo_lite.course.evaluate import accuracy, record_result
from sdpo_lite.course.models import load_model

train = to_conversational(load_task("code", "train"))
model, tokenizer = load_model(profile.model_name)
before = accuracy(model, tokenizer, "code", "heldout", max_new_tokens=profile.eval_tokens, progress=False)
print(before)
record_result("heldout_before", round(before.accuracy, 4))

# %% id="nb03-07"
from collections import Counter

rows = list(load_task("code", "heldout"))
passed, total = Counter(), Counter(r["category"] for r in rows)
for row, (_, _, _, ok) in zip(rows, before.examples):
    passed[row["category"]] += ok
print("held-out pass rate per kind:", ", ".join(f"{k} {passed[k]}/{total[k]}" for k in sorted(total)))
prompt, completion, _, ok = before.examples[1]
print(f"\n{prompt}\n--- the model wrote ({'passes' if ok else 'fails'}):\n{completion}")

# %% [markdown] id="nb03-08"
# A 135M-parameter model writes a plausible function and then explains it; the explanation does not matter (only the
# first fenced block is run), the function often does. Sampled at temperature 1, as in training, it passes all tests
# for roughly 1 attempt in 12 (measured on all 60 tasks, 4 samples each): most groups of 8 have no successful peer,
# so **without feedback most rollouts would have no teacher at all**.
#
# ## 3. The feedback flow on real rollouts
#
# One SDPO step's bookkeeping, without the training: 8 sampled answers to one training task, scored in the sandbox,
# then `sdpo_lite.reprompt` decides each one's teacher. A failed rollout whose group has a success sees that peer's
# solution; one without gets its own feedback (the official default: feedback only when there is no solution).

# %% id="nb03-09" tags=["nbval-ignore-output"]
from sdpo_lite.course.reports import print_rollouts
from sdpo_lite.course.rollouts import rollout_group


def group_for(entry_point):
    row = next(r for r in train if r["entry_point"] == entry_point)
    records = rollout_group(model, tokenizer, row, code_execution_reward, n=profile.num_generations,
                            max_new_tokens=profile.max_completion_length, temperature=profile.temperature)
    print(f"{entry_point}: {sum(r.score == 1.0 for r in records)} of {len(records)} passed; teachers: "
          f"{sum(r.demo_used for r in records)} with a peer's solution, {sum(r.feedback_used for r in records)} "
          f"with feedback, {sum(r.teacher_prompt is None for r in records)} without a teacher")
    return records


easy, hard = group_for("max_of_three"), group_for("sum_of_digits")
print_rollouts(hard, limit=1)

# %% [markdown] id="nb03-10"
# The teacher prompts of a failed rollout from each group, with what SDPO inserted highlighted: in the easy group a
# peer's passing solution, in the hard group (nobody passed) the rollout's own test feedback. Plain HTML, so it also
# shows on GitHub; the widgets in section 6 browse every rollout of a training step.

# %% id="nb03-11" tags=["nbval-ignore-output"]
from IPython.display import display

from sdpo_lite.course.widgets import show_teacher_prompt

for records in (easy, hard):
    failed = next((r for r in records if r.teacher_prompt and r.score < 1), records[0])
    display(show_teacher_prompt(failed, static=True))

# %% [markdown] id="nb03-12"
# ## 4. What the teacher does with an error message, and with a peer's solution
#
# Take a wrong attempt at `remove_negatives` (it keeps the negatives instead of removing them) and score its tokens
# with the **same** weights, as the student (plain task) and as three teachers: one that read the test feedback, one
# that read a peer's correct solution, and one that read both. The rows around the comparison operator show each
# side's three most likely next tokens.

# %% id="nb03-13"
from sdpo_lite.course.reports import print_next_token_views
from sdpo_lite.course.rollouts import next_token_views
from sdpo_lite.reprompt import build_teacher_message

task = next(r for r in train if r["entry_point"] == "remove_negatives")
question = task["prompt"]
attempt = "```python\ndef remove_negatives(xs):\n    return [x for x in xs if x < 0]\n```"
peer = attempt.replace("x < 0", "x >= 0")
feedback = code_execution_reward([question], [attempt], entry_point=[task["entry_point"]], tests=[task["tests"]])
feedback = feedback[0]["feedback"]
print("feedback:", feedback, sep="\n")
for name, demo, fb in [("feedback", None, feedback), ("peer's solution", peer, None), ("both", peer, feedback)]:
    message = build_teacher_message(question[-1]["content"], demo, fb, SDPOConfig())[0]
    views = next_token_views(model, tokenizer, question, attempt, message)
    at = next(i for i, v in enumerate(views) if "<" in v["token"])
    print(f"\nteacher with {name}:")
    print_next_token_views(views[at - 1:at + 1])

# %% [markdown] id="nb03-14"
# At the `<`, the student gives `>=` (the fix) about 0.17. The teacher that read only the error message barely moves:
# SmolLM2-135M cannot yet work out from "expected [1, 3], got [-2, -4]" which token was wrong. The teacher with a
# peer's solution moves `>=` to about half, and with both to about 0.7. Everywhere else the teachers mostly agree with
# the student, so the loss concentrates on the token that was wrong; a scalar reward would blame every token alike.
#
# The paper's abstract puts SDPO's premise as the model's ability to "retrospectively identify its own mistakes
# in-context"; at 135M that ability is weak for error messages and stronger for a peer's solution. Such a weak
# self-teacher learns mostly from its peers' solutions, so the feedback matters most in groups where nobody passed,
# and there it is the *only* teacher signal.
#
# ## 5. Train: the same budget with and without feedback
#
# Two SDPO runs from the same starting weights, the same tasks, steps and seed. The only difference is
# `include_feedback`: without it a failed rollout gets a teacher only when a peer in its group passed.

# %% id="nb03-15" tags=["nbval-ignore-output"]
from sdpo_lite.course.recipes import train_run

del model  # each run loads the same starting weights afresh
nofb_run = train_run("SDPO, no feedback", profile, code_execution_reward, task="code",
                     sdpo=SDPOConfig(include_feedback=False), learning_rate=profile.sdpo_learning_rate,
                     disable_tqdm=True)

# %% id="nb03-16" tags=["nbval-ignore-output"]
fb_run = train_run("SDPO + feedback", profile, code_execution_reward, task="code",
                   sdpo=SDPOConfig(include_feedback=True), learning_rate=profile.sdpo_learning_rate, disable_tqdm=True,
                   keep="model")  # section 6 looks inside it; trained last, so no other model shares memory with it

# %% id="nb03-17" tags=["nbval-ignore-output"]
from sdpo_lite.course.reports import plot_comparison, summarise_runs

runs = [fb_run, nofb_run]
summarise_runs(runs, before.accuracy)
plot_comparison(runs, before.accuracy);

# %% [markdown] id="nb03-18"
# **Read the `with teacher` column first.** With feedback every rollout that failed has a teacher (a rollout that
# passed has one only when another attempt at its task also passed: its own "All tests passed" is never shown to a
# teacher); without feedback, only the rollouts of groups where some peer passed (30-40% of them in our runs). On a
# task this hard for the model, feedback is what turns most of the batch into training signal at all.
#
# **The held-out pass rate is a different story, and an honest one.** Ten steps of one task each show the model 10
# of the 43 training functions once. That is far too little to change which of 17 *unseen* functions a 135M model
# writes correctly, and one task is 5.9 points. Over three seeds (`benchmarks/compare.py --task code`, README) every
# method ended within one task of where it started, 17.6%: SDPO with feedback 11.8 / 17.6 / 17.6%, without feedback
# 17.6 / 17.6 / 23.5%, GRPO 17.6 / 23.5 / 17.6%. So this run demonstrates the mechanics, not a gain: do not read a
# difference of one task as a result.
#
# What should change with a bigger model and budget (the GPU profile: Qwen2.5-0.5B-Instruct, 40 steps of 4 tasks x 8
# attempts, 256 tokens): more attempts pass, so peers' solutions become demonstrations more often; a stronger teacher
# may be able to read an error message (section 4 showed SmolLM2 mostly cannot); and there are 160 training prompts
# instead of 10. Whether that is enough is not known: the GPU profile has not run yet.

# %% [markdown] id="nb03-19"
# ## 6. Look inside one step
#
# The last training step of the feedback run: every rollout with its score, its feedback and its teacher's prompt.
# Then the teacher-vs-student view along one rollout: each token coloured by the loss SDPO puts on it.
#
# The rollout in the view is chosen to teach (`views.teaching_record`): one that failed its tests, had a teacher,
# and whose largest disagreement is on code (an operator, a digit, a bracket) rather than on wording; the line above
# the view says which it found. Start at the darkest token: a tall teacher bar where the student's is short is the
# fix the feedback (or a peer's solution) suggested there.

# %% id="nb03-20" tags=["nbval-ignore-output"]
from sdpo_lite.course.widgets import browse_rollouts, show_distributions, trainer_settings

trainer, step = fb_run.trainer, fb_run.trainer.last_rollouts
print_rollouts(step, limit=1)
browse_rollouts(step)  # widget: pick a group, then a rollout

# %% id="nb03-21" tags=["nbval-ignore-output"]
from sdpo_lite.course.widgets import show_teaching_rollout

record, view = show_teaching_rollout(fb_run.model, trainer, step)

# %% id="nb03-22" tags=["nbval-ignore-output"]
show_distributions(fb_run.model, trainer.processing_class, record, **trainer_settings(trainer),
                   position=view.argmax())  # the widget

# %% [markdown] id="nb03-23"
# ## 7. Try it yourself: feedback design
#
# The teacher can only use what the feedback says. Fill in `terse_reward`: a reward function that runs the same tests
# (call `code_execution_reward` with the same arguments) and keeps each score, but only the **first line** of each
# feedback: at most one failing test, no pass count. Then run the check cell (stuck? `show_solution("terse")`).
#
# What to expect afterwards: pass it to `train_run` in place of `code_execution_reward` to see whether terser
# feedback teaches less. Section 4's numbers suggest why it might not matter much at this size: the error message
# alone moved the right token from 0.17 to 0.18.

# %% id="nb03-24"
def terse_reward(prompts, completions, **columns):
    outs = code_execution_reward(prompts, completions, **columns)  # [{"score": ..., "feedback": "..."}, ...]
    raise NotImplementedError("fill in terse_reward")  # your code: the same scores, each feedback's first line

# %% id="nb03-25"
from sdpo_lite.course.exercises import check, show_solution

check("terse", terse_reward)

# %% [markdown] id="nb03-26"
# ## Summary
#
# - Executed code gives SDPO specific, token-locatable feedback, but a 135M teacher can barely use an error message on
#   its own: at the wrong token, the fix `>=` went from 0.17 to 0.18 with the test feedback, to 0.54 with a peer's
#   solution and to 0.72 with both (section 4).
# - Feedback is what gives a weak model a teacher at all: without it, only groups with a passing peer teach.
# - Model-written code is untrusted input. `sdpo_lite.course.sandbox` runs it in a separate, limited, unprivileged process;
#   for anything beyond a course, put a VM or container boundary around it as well.
# - With a bigger model (the GPU profile: Qwen2.5-0.5B-Instruct, 40 steps of 4 tasks x 8 attempts, 256 tokens)
#   more rollouts should pass, so peers' solutions become demonstrations more often; the GPU profile has not run
#   yet, so whether that makes SDPO better here is an open question.
