# %% [markdown] id="nb01-00"
# # 01 · Basic SDPO: a model that learns from its own corrected attempts
#
# In GRPO a completion gets **one number**. "23 + 45 equals 67." scores 0, and so does every one of its tokens:
# the correct "23 + 45" and the wrong "7" are blamed alike. Worse, when none of the 8 samples of a question is
# right, all 8 get the same score, the group's advantages are all zero, and the step teaches nothing. With a small
# model that rarely succeeds, that is most steps.
#
# **SDPO** (Self-Distillation Policy Optimization, Hübotter et al., 2026) uses what the environment *says*, not only
# its score. The same model reads its attempt again, this time with a successful peer's answer and/or the feedback
# ("Wrong: 23 + 45 = 68, you wrote 67") in its prompt. That **self-teacher** now knows where the attempt went wrong,
# and its next-token distribution at every position of the attempt is a dense target: the student (the plain
# prompt) is trained to match it, token by token.
#
# In this notebook you will: look at the teacher's distributions on real tokens, train SmolLM2-135M with SDPO on
# two-digit addition on your CPU, compare it with GRPO (and the GRPO+SDPO blend the paper recommends for weak
# models) from the same starting weights, and look inside a training step.

# %% id="nb01-01" tags=["setup-cell"]
# The shared setup cell: scripts/notebook_cells.py writes it here when the notebook is built.

# %% id="nb01-02"
from sdpo_lite import SDPOConfig
from sdpo_lite.course.recipes import choose_profile

PROFILE = None  # None: chosen from the hardware ("cpu", "lowmem", "gpu", "tiny"); or set one by name
profile = choose_profile(PROFILE)
print(profile.describe())

# %% [markdown] id="nb01-03"
# ## 1. The task and two kinds of feedback
#
# Fifty training problems and 120 held-out ones (`data/addition/`). The reward is 1 when the **last** number in the
# completion is the sum. The feedback comes in two flavours: the plain one only says "Wrong.", the rich one says
# what the right sum was and what the model wrote. Both give the same *score*; GRPO cannot tell them apart.

# %% id="nb01-04"
from sdpo_lite.course.tasks import load_task, to_conversational
from sdpo_lite.course.rewards import addition_reward, addition_reward_rich

train = to_conversational(load_task("addition", "train"))
print(len(train), "training problems, e.g.", train[0]["prompt"], "->", train[0]["expected"])
attempts = ["23 + 45 equals 67.", "23 + 45 = 68", "To solve this, we add the tens"]
prompts = [[{"role": "user", "content": "What is 23 + 45? Answer with just the number."}]] * 3
for reward in (addition_reward, addition_reward_rich):
    print(f"\n{reward.__name__}:")
    for attempt, out in zip(attempts, reward(prompts, attempts, expected=[68] * 3)):
        print(f"  {attempt!r:36} score {out['score']}  feedback {out['feedback']!r}")

# %% [markdown] id="nb01-05"
# ## 2. The self-teacher and its prompt
#
# For each rollout, `sdpo_lite.reprompt` builds the teacher's prompt with the official SDPO template: the original
# question, then a successful peer's answer if the group has one ("Correct solution: ..."), then the feedback if
# there is no solution (the official default, `feedback_only_without_solution=True`), then "Correctly solve the
# original question." The chat template wraps it exactly like the student's prompt.

# %% id="nb01-06"
from sdpo_lite.course.models import load_model
from sdpo_lite.reprompt import build_teacher_message, render_teacher_prompt

model, tokenizer = load_model(profile.model_name)
question = prompts[0]
message, spans = build_teacher_message(question[0]["content"], None, "Wrong: 23 + 45 = 68, you wrote 67", SDPOConfig())
print(render_teacher_prompt(question, message, tokenizer))
print("inserted feedback at characters", spans["feedback"], "->", repr(message[slice(*spans["feedback"])]))

# %% [markdown] id="nb01-07"
# ## 3. Look at the teacher before training anything
#
# Here is the picture SDPO is built on. Take the wrong attempt "23 + 45 equals 67." and score its tokens twice with
# the **same** weights: once as the student (plain question), once as the teacher (question + feedback). At each
# position, the table shows the three tokens each side would write next, with their probabilities.

# %% id="nb01-08"
from sdpo_lite.course.reports import print_next_token_views
from sdpo_lite.course.rollouts import next_token_views

rich = build_teacher_message(question[0]["content"], None, "Wrong: 23 + 45 = 68, you wrote 67", SDPOConfig())[0]
print_next_token_views(next_token_views(model, tokenizer, question, "23 + 45 equals 67.", rich))

# %% [markdown] id="nb01-09"
# Read the rows for `6` and `7`: the student spreads its bets over many digits, the teacher, who read the feedback,
# puts most of its mass on `6` and `8`, the digits of 68. Elsewhere the two mostly agree, so the loss there is
# small. That is the dense signal: it points at the exact tokens that were wrong, and at what to write instead.
#
# Now the same with the plain feedback "Wrong.". The teacher now knows that the attempt failed, but not how, and look
# at the tens digit below: it moves most of its mass to `9`, another wrong digit. Feedback without the answer does
# not merely teach nothing; it can teach the wrong thing.

# %% id="nb01-10"
plain = build_teacher_message(question[0]["content"], None, "Wrong.", SDPOConfig())[0]
rows = next_token_views(model, tokenizer, question, "23 + 45 equals 67.", plain)
print_next_token_views(rows[7:10])  # the answer digits and the full stop

# %% [markdown] id="nb01-11"
# ## 4. The loss in three lines
#
# At each completion position $t$ let $p = \mathrm{softmax}(z_S/\tau)$ be the student's next-token distribution
# (plain prompt) and $q = \mathrm{softmax}(z_T/\tau)$ the teacher's (prompt + feedback), $\tau$ the sampling
# temperature. SDPO compares them on a small support: $S$ = the student's top-$k$ tokens (`distillation_topk`,
# 100), plus one **tail** bucket holding the rest of the mass, $1 - \sum_{i \in S} p_i$:
#
# $$D_\alpha(p, q) = (1-\alpha)\,\mathrm{KL}(p \,\|\, m) + \alpha\,\mathrm{KL}(q \,\|\, m), \qquad m = (1-\alpha)\,p + \alpha\,q$$
#
# Read literally, this is 0 at both ends ($m$ becomes $p$ at $\alpha = 0$ and $q$ at $\alpha = 1$), so the ends are
# defined on their own, as in the official code: $\alpha = 0$ is the forward KL $\mathrm{KL}(q\|p)$, $\alpha = 1$
# the reverse KL $\mathrm{KL}(p\|q)$. The default $\alpha = 0.5$ is the Jensen-Shannon divergence. The loss is the mean of $D_\alpha$ over all completion
# tokens of rollouts that have a teacher; only the student gets gradients.
#
# The **teacher's weights** are an exponential moving average of the student's, $\theta_T \leftarrow
# (1-r)\,\theta_T + r\,\theta_S$ after every optimiser step ($r$ = `ema_tau` = 0.05): a target that moves, but
# slowly, so the student is not chasing its own noise.

# %% id="nb01-12" tags=["nbval-ignore-output"]
# (a picture: nbval does not compare images, and some kernels also echo the figure's repr)
from sdpo_lite.course.reports import draw_sdpo_data_flow

draw_sdpo_data_flow();

# %% [markdown] id="nb01-13"
# ## 5. Where we start
#
# Greedy accuracy on the 120 held-out problems (never trained on), the same measurement as notebook 00.

# %% id="nb01-14"
from sdpo_lite.course.evaluate import accuracy, record_result

before = accuracy(model, tokenizer, "addition", "heldout", limit=profile.eval_limit, progress=False)
print(before)
record_result("heldout_before", round(before.accuracy, 4))
del model  # every run below loads the same starting weights afresh

# %% [markdown] id="nb01-15"
# ## 6. Train: GRPO, the blend and SDPO, from the same weights
#
# Three runs with the same number of steps, prompts and generations (`profile` above). SDPO uses the rich feedback;
# GRPO only sees the scores (feedback changes nothing for it). All three use the learning rate that was best for
# each of them in the sweep of `benchmarks/compare.py` (1e-5 out of 1e-5, 3e-5 and 1e-4; see the README):
# with Adam the step size barely depends on the loss's scale, and at 1e-4 SDPO wrecked the model (14% to 2%).
# The training logs are hidden; the figure below is made from them.

# %% id="nb01-16" tags=["nbval-ignore-output"]
from sdpo_lite.course.recipes import train_run

grpo_run = train_run("GRPO", profile, addition_reward, sdpo=SDPOConfig(enabled=False), disable_tqdm=True)

# %% id="nb01-17" tags=["nbval-ignore-output"]
blend_run = train_run(f"blend (lambda={profile.grpo_weight})", profile, addition_reward_rich, disable_tqdm=True,
                      sdpo=SDPOConfig(grpo_weight=profile.grpo_weight, alpha=0.5, distillation_topk=100))

# %% id="nb01-18" tags=["nbval-ignore-output"]
sdpo_run = train_run("SDPO", profile, addition_reward_rich, learning_rate=profile.sdpo_learning_rate,
                     sdpo=SDPOConfig(alpha=0.5, distillation_topk=100, ema_tau=0.05), disable_tqdm=True,
                     keep="model")  # section 8 looks inside it; trained last, so no other model shares memory with it

# %% [markdown] id="nb01-19"
# ## 7. What happened

# %% id="nb01-20" tags=["nbval-ignore-output"]
from sdpo_lite.course.reports import plot_comparison, summarise_runs

runs = [sdpo_run, grpo_run, blend_run]
summarise_runs(runs, before.accuracy)
plot_comparison(runs, before.accuracy);

# %% [markdown] id="nb01-21"
# Two different numbers are plotted. The **training success rate** (left) is measured on *sampled* completions at
# temperature 1, the ones the trainer learns from. The **held-out accuracy** (right) is greedy decoding on problems
# never seen in training.
#
# What to expect, from the 3-seed benchmark in the README (`benchmarks/compare.py`, 24 steps, lr 1e-5, this
# CPU profile; 95% intervals from `benchmarks/summarise.py`): held-out accuracy went from 14.2% to **60.3%** on average
# with GRPO (seeds 0 / 1 / 2: 61.7 / 63.3 / 55.8%), **36.9%** with pure SDPO (38.3 / 43.3 / 29.2%) and **63.3%** with
# the blend (61.7 / 74.2 / 54.2%). Paired by seed, pure SDPO is 23.3 points behind GRPO (95% CI 15.1 to 31.6 points
# behind): it beats its starting point but clearly loses to GRPO here. The blend minus GRPO is +3.1 points with a
# 95% CI of -13.8 to +19.9: no measurable difference with three seeds. Your run above is one seed; compare its
# numbers, not this paragraph.
#
# **Why pure SDPO loses here** shows in the `truncated` column: most of the baseline's answers ramble past the 16-token
# budget. GRPO's reward contrast (a short, correct answer scores 1, a rambling one 0) teaches the model to stop early,
# and that format change is most of its gain. SDPO's teacher knows the right *digits* (section 3) but rambles just like
# the student, because it is the student: it corrects what the attempt says, not how long it is. The blend gets both:
# GRPO's format and SDPO's per-token correction of the digits. This matches the paper: SDPO's advantage grows with
# model strength, and a blend helps weak models.

# %% [markdown] id="nb01-22"
# ## 8. Look inside one step
#
# `trainer.last_rollouts` keeps, for the last step, every rollout with its score, its feedback and the prompt its
# teacher read (None when it had neither a successful peer nor feedback, which masks it out of the loss). Below: the
# first rollouts as text, the teacher's prompt with the inserted feedback (or peer solution) highlighted, and a
# browser over all rollouts of the step. Each view has a static form (shown first) that survives on GitHub.

# %% id="nb01-23" tags=["nbval-ignore-output"]
from sdpo_lite.course.reports import print_rollouts
from sdpo_lite.course.widgets import browse_rollouts, show_distributions, show_teacher_prompt, trainer_settings

trainer, records = sdpo_run.trainer, sdpo_run.trainer.last_rollouts
print_rollouts(records, limit=2)
show_teacher_prompt(records[0], static=True)

# %% id="nb01-24" tags=["nbval-ignore-output"]
browse_rollouts(records)  # widget: pick a group, then a rollout

# %% [markdown] id="nb01-25"
# ### Where does the teacher disagree with the student?
#
# Each completion token is coloured by the loss SDPO puts on it (the divergence between student and EMA teacher on the
# student's top-100 + tail, exactly the trainer's loss). Click a token or move the slider: left, what the student would
# write next; right, what the teacher, who read the feedback, would write. Hatched: the token that was sampled.

# %% id="nb01-26" tags=["nbval-ignore-output"]
record = next((r for r in records if r.teacher_prompt), records[0])
show_distributions(sdpo_run.model, trainer.processing_class, record, **trainer_settings(trainer), static=True)

# %% id="nb01-27" tags=["nbval-ignore-output"]
show_distributions(sdpo_run.model, trainer.processing_class, record, **trainer_settings(trainer))  # the widget

# %% [markdown] id="nb01-28"
# ## 9. Try it yourself: a weaker hint
#
# Rich feedback gave the teacher the answer outright. How much does a *weaker* hint help? Write feedback that only
# says whether the answer was too high or too low. Fill in `higher_lower_reward` below (it must return one
# `{"score", "feedback"}` dict per completion), then run the check cell. To see its effect, pass it to `train_run`
# in place of `addition_reward_rich` and compare the held-out accuracy.

# %% id="nb01-29"
from sdpo_lite.course.tasks import addition_answer

def higher_lower_reward(prompts, completions, expected, **kwargs):
    out = []
    for completion, target in zip(completions, expected):
        text = completion[0]["content"] if isinstance(completion, list) else completion
        answer = addition_answer(text)
        if answer == target:
            out.append({"score": 1.0, "feedback": "Correct!"})
        elif answer is None:
            out.append({"score": 0.0, "feedback": "Your answer had no number."})
        else:
            out.append({"score": 0.0, "feedback": f"Wrong: {answer} is too {'high' if answer > target else 'low'}."})
    return out

# %% id="nb01-30"
# Check: the contract the trainer expects, and hints that point the right way.
from sdpo_lite.rewards import split_reward_outputs

outs = higher_lower_reward(prompts, ["23 + 45 = 70", "It is 60", "68"], expected=[68, 68, 68])
scores, feedback = split_reward_outputs(outs, 3, "higher_lower_reward")
assert scores == [0.0, 0.0, 1.0], scores
assert "high" in feedback[0] and "low" in feedback[1], feedback
print("OK:", feedback)

# %% [markdown] id="nb01-31"
# ## Summary
#
# - SDPO turns feedback text into a per-token target: the model's own predictions, conditioned on the feedback.
# - The teacher is only as good as the feedback: "68, not 67" points at the digits; "Wrong." does not, and here it
#   moved the teacher to another wrong digit (section 3).
# - On a 135M model and 24 steps pure SDPO loses clearly to GRPO (23 points behind, 3 seeds) and the blend shows no
#   measurable difference from GRPO; the paper finds SDPO's advantage grows with model strength (and that it can
#   lose to GRPO on weak models). The GPU profile
#   (Qwen2.5-0.5B-Instruct, chosen automatically with a CUDA GPU and the Hub) runs 100 steps of 4 prompts x 8
#   generations.
#
# Next: notebook 03 uses SDPO where it shines, rich feedback from executed code (error messages, failing tests).
