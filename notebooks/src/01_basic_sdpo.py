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
# **You will**: look at the teacher's distributions on real tokens; check SDPO's maths by hand against the package
# (five equations); build an SDPO run argument by argument; train SmolLM2-135M with SDPO on two-digit addition on
# your CPU and compare it with GRPO and the GRPO+SDPO blend from the same starting weights; look inside a training
# step; write a feedback function yourself. About 10 minutes on 2 CPU cores.
#
# **Prerequisites**: notebook 00 (the setup and the untrained model's 14% on addition); what a policy gradient and
# a KL divergence are. GRPO itself is explained on the way (equation 1).

# %% [markdown] id="nb01-56"
# > **What the paper found.** Hübotter, Lübeck, Behric, Baumann, Bagatella, Marta, Hakimi, Shenfeld, Kleine Buening,
# > Guestrin and Krause, *Reinforcement Learning via Self-Distillation* (ETH Zurich, MPI-IS, MIT, Stanford; January
# > 2026), [arXiv 2601.20802](https://arxiv.org/abs/2601.20802), code at
# > [github.com/lasgroup/SDPO](https://github.com/lasgroup/SDPO). From its abstract:
# > - across scientific reasoning, tool use and competitive programming (LiveCodeBench v6), SDPO improves sample
# >   efficiency and final accuracy over strong RLVR baselines;
# > - in environments that return only a score, it still beats the baselines, by using successful rollouts as
# >   implicit feedback for the failed ones (notebook 01's "peers only" cell in the README measures that here);
# > - applied to single hard questions at test time, it reaches the same discovery probability as best-of-k sampling
# >   or multi-turn conversations with **3x fewer attempts** (notebook 04 tries this at 135M).
# >
# > The models, sizes and per-benchmark numbers are in the paper's body; this course does not quote them until they
# > are checked against its tables. What it measures itself, at 135M on a laptop, is in each notebook and the README.

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
# ## 4. The maths: five equations, the code behind each, and a check by hand
#
# Each equation below is followed by the code that computes it in training (TRL's or `sdpo_lite`'s, printed from
# the installed package) and by the same number computed by hand from this notebook's own tensors.
#
# **(1) GRPO's group advantage.** Sample $G$ completions $y_1..y_G$ of one question, score them $r_1..r_G$; every
# token of $y_i$ gets the same advantage
#
# $$A_i = \frac{r_i - \operatorname{mean}(r_1, \dots, r_G)}{\operatorname{std}(r_1, \dots, r_G) + \epsilon}.$$
#
# A group where every completion failed has $r_i - \operatorname{mean} = 0$ for all $i$: no signal at all.

# %% id="nb01-40"
import torch
from trl import GRPOTrainer
from trl.trainer.utils import nanstd
from sdpo_lite.course.reports import show_source

show_source(GRPOTrainer._generate_and_score_completions, "mean_grouped_rewards = torch.nanmean",
            "advantages = advantages / (std_rewards")

# %% id="nb01-41"
group = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # 8 attempts at one question, one right
rewards = torch.tensor(group)
trl_way = (rewards - rewards.mean()) / (nanstd(rewards) + 1e-4)  # TRL's lines above, for one group
mean = sum(group) / len(group)
std = (sum((r - mean) ** 2 for r in group) / (len(group) - 1)) ** 0.5  # by hand: the unbiased std
by_hand = [(r - mean) / (std + 1e-4) for r in group]
print("advantages by hand:", [round(a, 3) for a in by_hand])
assert torch.allclose(trl_way, torch.tensor(by_hand))
all_failed = torch.zeros(8)
print("a group where all 8 failed:", ((all_failed - all_failed.mean()) / (nanstd(all_failed) + 1e-4)).tolist())

# %% [markdown] id="nb01-42"
# **(2) SDPO's per-token objective.** At position $t$ of completion $y_i$, the student
# $p_t = \pi_\theta(\cdot \mid x, y_{<t})$ reads the plain question $x$; the teacher
# $q_t = \pi_{\bar\theta}(\cdot \mid x, f, y_{<t})$ reads it with the feedback or a peer's solution $f$ (no gradient
# flows into it). Both are compared on $S_t$, the student's top-$k$ tokens ($k$ = `distillation_topk` = 100), plus one
# **tail** bucket for the mass outside $S_t$:
#
# $$\mathcal{L}_{\text{SDPO}}(\theta) = \frac{1}{N} \sum_{i} \sum_{t=1}^{|y_i|} D_\alpha\big(\bar p_t, \bar q_t\big), \qquad \bar p_t = \Big(\big(p_t(v)\big)_{v \in S_t},\; 1 - \sum_{v \in S_t} p_t(v)\Big),$$
#
# $\bar q_t$ likewise (on the *student's* $S_t$), $N$ the number of completion tokens of rollouts that have a teacher.
# Unlike GRPO's one number per completion, every token has its own target. Read as a policy gradient (the paper's
# view), distilling the sampled token alone gives token $t$ the advantage $\log q_t(y_t) - \log p_t(y_t)$: positive
# where the teacher likes the token more than the student does (`SDPOConfig(token_level=True, alpha=1.0)`).
#
# The code: the student's top-$k$ picks the support, then `with_tail` adds the bucket.

# %% id="nb01-43"
from sdpo_lite import loss

show_source(loss.distillation_loss, "if topk is None:", "student_logp_S, teacher_logq_S = student_logp.gather")
show_source(loss.with_tail)

# %% [markdown] id="nb01-44"
# By hand, on this notebook's own numbers: the attempt "23 + 45 equals 67." under the rich feedback of section 3, at
# the wrong digit `7`. First the student's and the teacher's logits at every position (the trainer's forward passes),
# then $\bar p$ and $\bar q$ at that one position, written out.

# %% id="nb01-45"
from sdpo_lite.course.rollouts import completion_logits

student_logits, teacher_logits, ids = completion_logits(model, tokenizer, question, "23 + 45 equals 67.", rich)
t = [tokenizer.decode([int(i)]) for i in ids].index("7")  # the position that writes the wrong digit
p = torch.softmax(student_logits[t], dim=-1)  # (V,): the student's next-token distribution at t
q = torch.softmax(teacher_logits[t], dim=-1)  # (V,): the teacher's, same position, same weights, + feedback
S = p.topk(100).indices  # the student's top-100 token ids
p_bar = torch.cat([p[S], 1 - p[S].sum(dim=0, keepdim=True)])  # 101 numbers: top-100 + tail
q_bar = torch.cat([q[S], 1 - q[S].sum(dim=0, keepdim=True)])
print(f"position {t}, token '7': p(7) = {p[ids[t]]:.3f}, q(7) = {q[ids[t]]:.3f}; "
      f"tail mass: student {p_bar[-1]:.4f}, teacher {q_bar[-1]:.4f}")

# %% [markdown] id="nb01-46"
# **(3) The $\alpha$ family.** With $m = (1-\alpha)\,\bar p + \alpha\,\bar q$,
#
# $$D_\alpha(\bar p, \bar q) = \begin{cases} \mathrm{KL}(\bar q \,\|\, \bar p) & \alpha = 0 \text{ (forward KL)} \\ (1-\alpha)\,\mathrm{KL}(\bar p \,\|\, m) + \alpha\,\mathrm{KL}(\bar q \,\|\, m) & 0 < \alpha < 1 \\ \mathrm{KL}(\bar p \,\|\, \bar q) & \alpha = 1 \text{ (reverse KL)} \end{cases}$$
#
# The middle line is 0 at both ends if read literally ($m$ becomes $\bar p$ at $\alpha = 0$ and $\bar q$ at
# $\alpha = 1$), so the ends are defined on their own, as in the official code. The default $\alpha = 0.5$ is the
# Jensen-Shannon divergence. The code, then the three cases by hand against it:

# %% id="nb01-47"
show_source(loss.alpha_divergence)

# %% id="nb01-48"
def kl(a, b):  # KL(a || b) = sum_v a(v) log(a(v) / b(v))
    return float((a * (a / b).log()).sum())

m = 0.5 * p_bar + 0.5 * q_bar
by_hand = {0.0: kl(q_bar, p_bar), 0.5: 0.5 * kl(p_bar, m) + 0.5 * kl(q_bar, m), 1.0: kl(p_bar, q_bar)}
for alpha, value in by_hand.items():
    package = float(loss.alpha_divergence(p_bar.log(), q_bar.log(), alpha))
    print(f"alpha {alpha}: by hand {value:.4f}, alpha_divergence {package:.4f}")
    assert abs(value - package) < 1e-4 * max(1.0, value)
per_token = loss.distillation_loss(student_logits[None], teacher_logits[None], ids[None], torch.ones(1, len(ids)),
                                   alpha=0.5, topk=100, add_tail=True, temperature=1.0).per_token[0]  # (T,)
assert abs(float(per_token[t]) - by_hand[0.5]) < 1e-4  # the trainer's loss at this token, equation (2)
print(f"distillation_loss at '7': {float(per_token[t]):.4f}; the largest per-token loss of the attempt is at "
      f"{tokenizer.decode([int(ids[int(per_token.argmax())])])!r}")

# %% [markdown] id="nb01-49"
# **(4) The $\lambda$-blend.** GRPO's signal can be mixed back in. `sdpo_lite` blends the two
# **losses**,
#
# $$\mathcal{L} = \lambda\, \mathcal{L}_{\text{GRPO}} + (1 - \lambda)\, \mathcal{L}_{\text{SDPO}},$$
#
# `SDPOConfig(grpo_weight=λ)`. The official code has no blend (it is pure SDPO, $\lambda = 0$), so this one is
# ours. The $\lambda = 0.9$ used below is ours, from the sweep in the README.
#
# **(5) The importance weight.** When a batch of rollouts is reused for more than one optimiser step
# (`num_iterations > 1`), the policy that sampled it ($\pi_{\text{old}}$) is no longer the one being trained, and
# each token's SDPO loss is weighted by
#
# $$w_t = \min\!\Big(\frac{\pi_\theta(y_t \mid x, y_{<t})}{\pi_{\text{old}}(y_t \mid x, y_{<t})},\ c\Big), \qquad c = \texttt{is\_clip} = 2,$$
#
# with no gradient through $w_t$. With one step per batch, as here, $w_t = 1$. The code of both, then both by hand:

# %% id="nb01-50"
from sdpo_lite.trainer import SDPOTrainer

show_source(SDPOTrainer._compute_loss, "if lam != 0.0:", "loss = lam * grpo + (1.0 - lam) * loss")
show_source(loss.importance_weight)

# %% id="nb01-51"
lam, grpo_part, sdpo_part = 0.9, 0.25, by_hand[0.5]  # a GRPO loss of 0.25 beside the JSD at '7' from (3)
print(f"blend: {lam} x {grpo_part} + {1 - lam:.1f} x {sdpo_part:.4f} = {lam * grpo_part + (1 - lam) * sdpo_part:.4f}")
logp_y = torch.log_softmax(student_logits[t], dim=-1)[ids[t]]  # log p(7) under the current student
for name, logp_old in [("on-policy", logp_y), ("old policy 3x less sure of '7'", logp_y - torch.log(torch.tensor(3.0)))]:
    by_hand_w = min(float(torch.exp(logp_y - logp_old)), 2.0)
    package_w = float(loss.importance_weight(logp_y, logp_old, is_clip=2.0))
    print(f"{name}: w by hand {by_hand_w:.3f}, importance_weight {package_w:.3f}")
    assert abs(by_hand_w - package_w) < 1e-5

# %% [markdown] id="nb01-52"
# **The teacher's weights** $\bar\theta$ are an exponential moving average of the student's,
# $\bar\theta \leftarrow (1-r)\,\bar\theta + r\,\theta$ after every optimiser step ($r$ = `ema_tau` = 0.05): a target
# that moves, but slowly, so the student is not chasing its own noise. The whole loop in one picture:

# %% id="nb01-12" tags=["nbval-ignore-output"]
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
# An SDPO run is TRL's `GRPOConfig` (how to sample and optimise) plus an `SDPOConfig` (what the self-teacher does),
# handed to `SDPOTrainer` with a reward function that returns a score and a feedback string per completion. Here is
# every argument of this notebook's SDPO run, from the profile printed at the top (the `cpu` profile on a laptop;
# the `gpu` profile changes the sizes, not the recipe).

# %% id="nb01-53"
from trl import GRPOConfig
from sdpo_lite.course.models import precision_flags

args = GRPOConfig(
    output_dir="/tmp/sdpo_course/SDPO", save_strategy="no", report_to=[], seed=0,  # no checkpoints, no trackers
    max_steps=profile.steps,  # optimiser steps (24 on the cpu profile)
    num_generations=profile.num_generations,  # G: completions sampled per question, one group (8)
    per_device_train_batch_size=profile.prompts_per_step * profile.num_generations // profile.grad_accum,
    gradient_accumulation_steps=profile.grad_accum,  # 1 prompt x 8 completions = one step's batch on the cpu profile
    max_completion_length=profile.max_completion_length,  # tokens per completion (16): longer ones are truncated
    temperature=profile.temperature,  # sampling temperature, and the tau that divides both models' logits in the loss
    learning_rate=profile.sdpo_learning_rate, lr_scheduler_type="constant", warmup_steps=0,  # Adam at 1e-5, flat
    beta=0.0,  # no KL penalty to a reference model (TRL's default; SDPO's teacher is something else)
    logging_steps=1, disable_tqdm=True,  # a log line per step (the run prints a short one every 4 steps)
    gradient_checkpointing_kwargs={"use_reentrant": True},  # less activation memory than the default variant
    **precision_flags(),  # bf16 / fp16 / fp32 from the hardware (fp32 on a CPU)
)
sdpo_config = SDPOConfig(
    alpha=0.5,  # D_alpha of equation (3): 0.5 = Jensen-Shannon
    distillation_topk=100, distillation_add_tail=True,  # the support S_t of equation (2) and its tail bucket
    teacher_mode="ema", ema_tau=0.05,  # the teacher's weights: an EMA of the student's, rate r = 0.05
    include_feedback=True, feedback_only_without_solution=True,  # feedback goes in when no peer succeeded
    success_threshold=0.5,  # a rollout with reward >= 0.5 is a success, a demonstration for its peers
    grpo_weight=0.0,  # lambda of equation (4): 0 = pure SDPO
)
from sdpo_lite.course.recipes import grpo_args

recipe = grpo_args(profile, args.output_dir, learning_rate=profile.sdpo_learning_rate, disable_tqdm=True).to_dict()
differences = {k: v for k, v in args.to_dict().items() if recipe.get(k) != v and k != "logging_dir"}
print("train_run would build the same GRPOConfig:", not differences, differences or "")

# %% [markdown] id="nb01-54"
# The two other runs go through `train_run(label, profile, reward, sdpo=...)` from `sdpo_lite.course.recipes`, which
# builds exactly this (the check above) with one thing changed: GRPO gets `SDPOConfig(enabled=False)` and only the
# scores (feedback changes nothing for it); the blend gets `grpo_weight=0.9`. All three use the learning rate that
# was best for each in the sweep of `benchmarks/compare.py` (1e-5 out of 1e-5, 3e-5 and 1e-4; see the README): with
# Adam the step size barely depends on the loss's scale, and at 1e-4 SDPO wrecked the model (14% to 2%). Each run
# prints a line every 4 steps with the time so far and an estimate of the time left.

# %% id="nb01-16" tags=["nbval-ignore-output"]
from sdpo_lite.course.recipes import train_run

grpo_run = train_run("GRPO", profile, addition_reward, sdpo=SDPOConfig(enabled=False), disable_tqdm=True)

# %% id="nb01-17" tags=["nbval-ignore-output"]
blend_run = train_run(f"blend (lambda={profile.grpo_weight})", profile, addition_reward_rich, disable_tqdm=True,
                      sdpo=SDPOConfig(grpo_weight=profile.grpo_weight, alpha=0.5, distillation_topk=100))

# %% [markdown] id="nb01-55"
# And SDPO, by hand: fresh weights, the two configs above, the rich reward. `run_trainer` trains it and records the
# same numbers `train_run` records (it is `train_run`'s second half). It runs last so that no other model shares
# memory with it: section 8 looks inside it.

# %% id="nb01-18" tags=["nbval-ignore-output"]
from sdpo_lite import SDPOTrainer
from sdpo_lite.course.recipes import run_trainer

model, tokenizer = load_model(profile.model_name)  # the same starting weights as the other two runs
if profile.lora_rank:  # the lowmem profile (Binder's 2 GB): LoRA adapters on a frozen base, as train_run does
    from sdpo_lite.course.models import add_lora
    model = add_lora(model, profile.lora_rank)
trainer = SDPOTrainer(model, args=args, sdpo_config=sdpo_config, reward_funcs=[addition_reward_rich],
                      train_dataset=train, processing_class=tokenizer)
del model  # the trainer holds it
sdpo_run = run_trainer("SDPO", trainer, profile=profile, keep="model")

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
# What to expect, from the regime map's base cell in the README (this exact setting, five seeds;
# `python benchmarks/regimes.py report`, 95% t-intervals over seeds): held-out accuracy went from 14.2% to
# **50.5% ± 18.8** with GRPO (seeds 0-4: 61.7 / 63.3 / 55.8 / 45.0 / 26.7%) and **30.8% ± 13.5** with pure SDPO
# (38.3 / 43.3 / 29.2 / 28.3 / 15.0%). Paired by seed, pure SDPO minus GRPO is **-19.7 points ± 7.2**: worse than
# GRPO here, on every one of the five seeds. The blend reaches **52.5% ± 23.0** (61.7 / 74.2 / 54.2 / 48.3 / 24.2%);
# blend minus GRPO is **+2.0 points ± 6.7**: no measurable difference. Your run above is seed 0; compare its
# numbers, not this paragraph.
#
# **Why pure SDPO loses here** shows in the `truncated` column: most of the baseline's answers ramble past the 16-token
# budget. GRPO's reward contrast (a short, correct answer scores 1, a rambling one 0) teaches the model to stop early,
# and that format change is most of its gain. SDPO's teacher knows the right *digits* (section 3) but rambles just like
# the student, because it is the student: it corrects what the attempt says, not how long it is. The blend gets
# GRPO's format (it ends 21.7 points ± 10.0 above pure SDPO); whether SDPO's per-token correction adds anything on
# top of GRPO is not measurable here (+2.0 ± 6.7). It fits the paper's premise (its abstract): the self-teacher is
# the model's own ability to spot its mistakes in context, and a 135M model has little of it.

# %% [markdown] id="nb01-57"
# **What training changed in the answers.** The same held-out problems, greedy, before training and after each run
# (problems where the outcomes differ first):

# %% id="nb01-58" tags=["nbval-ignore-output"]
from sdpo_lite.course.reports import print_before_after

print_before_after(before, runs, limit=6)

# %% [markdown] id="nb01-59"
# **Where the line runs: the regime map.** One run is one seed. `benchmarks/regimes.py` trains all three methods
# again and again, changing one thing at a time from this notebook's setting: task difficulty, the token budget,
# what the feedback says, the teacher, alpha, top-k, the learning rate. Left: each method minus GRPO with its 95%
# interval over paired seeds (an interval that crosses 0 is no measurable difference); right: this setting's
# training success against wall time, one line per seed. The README's table has every cell's numbers and how many
# seeds each has so far; cells with fewer than five seeds are a screen, not a result. The figure below is the one
# saved when this notebook was last run.

# %% id="nb01-60" tags=["nbval-ignore-output"]
from IPython.display import Image

Image(filename=str(repo / "docs" / "images" / "regime_map.png"), width=900)

# %% [markdown] id="nb01-61"
# **What the map shows so far** (the README's table; only cells with five seeds are read here):
#
# - **This notebook's setting**: pure SDPO minus GRPO **-19.7 points ± 7.2**, worse (above).
# - **Sparse reward, three-digit operands**: the untrained model answers 1.7% of the held-out problems. In three of
#   GRPO's five runs not one of the 192 rollouts was correct, so every advantage was zero and GRPO never changed the
#   model: GRPO ends at **2.3% ± 2.5**, pure SDPO at **7.5% ± 2.9**, and paired by seed pure SDPO minus GRPO is
#   **+5.2 points ± 4.7: better than GRPO**, at about the same training time per run. Its seed 2 improved with no
#   correct rollout in any step: the feedback alone gave its teacher something to say.
# - **The blend, same sparse cell**: **16.8% ± 7.8** (17.5 / 19.2 / 5.8 / 20.8 / 20.8%); blend minus GRPO
#   **+14.5 points ± 10.3: better than GRPO**, and 9.3 points ± 7.3 above pure SDPO. In a step where no rollout
#   is correct, GRPO's share of the blend's loss is zero, so the blend is pure SDPO with a tenth of the step; once a
#   rollout is correct, GRPO's share rewards it. Which of the two made the difference is not measured yet.
#
# So the line runs where the paper's argument puts it: when the reward is almost never 1, GRPO has nothing to learn
# from and the self-teacher still has the feedback; when the reward is often 1 (two-digit sums, 14% to start),
# GRPO's contrast between short right answers and rambling wrong ones wins. Read the sparse-reward win at its size:
# its interval only just clears zero, the two methods' own intervals touch, and 7.5% is 9 problems of 120. The other
# factors (token budget, what the feedback says, teacher, alpha, top-k) have two seeds or none yet: a screen.
# Seed 2 is where every method ended at 5.8%: no method found a correct rollout early enough to build on.

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
#
# The rollout shown is chosen to teach: one that **failed**, had a teacher, and whose largest disagreement falls on
# a digit or operator rather than on wording (`views.teaching_record`; the line above the view says what it found).
# Read it from the darkest token: if the teacher's bar for another digit is tall where the student's is short, the
# feedback told the teacher what to write there, and the loss pulls the student that way; if both sides spread their
# bets alike, this token teaches little.

# %% id="nb01-26" tags=["nbval-ignore-output"]
from sdpo_lite.course.widgets import show_teaching_rollout

record, view = show_teaching_rollout(sdpo_run.model, trainer, records)

# %% id="nb01-27" tags=["nbval-ignore-output"]
show_distributions(sdpo_run.model, trainer.processing_class, record, **trainer_settings(trainer),
                   position=view.argmax())  # the widget

# %% [markdown] id="nb01-28"
# ## 9. Try it yourself: a weaker hint
#
# Rich feedback gave the teacher the answer outright. How much does a *weaker* hint help? Fill in
# `higher_lower_reward` below: score 1.0 when the last number in the completion is the sum (`addition_answer` reads
# it), else 0.0; feedback that says only whether the answer was **too high or too low**, never the sum itself; and a
# sentence for a reply with no number. It returns one `{"score": ..., "feedback": ...}` dict per completion. Then
# run the check cell: until your function is right it says what is still wrong (stuck? `show_solution("higher_lower")`).
#
# What to expect afterwards: pass it to `train_run` in place of `addition_reward_rich` and compare the held-out
# accuracy. Section 3 showed that "Wrong." moved the teacher to another wrong digit; "too high" rules out half the
# digits, so the teacher has less to go on than with the sum, more than with "Wrong.". (The regime map in the README
# measures "Wrong." and the format-only feedback; this hint is yours to measure.)

# %% id="nb01-29"
from sdpo_lite.course.tasks import addition_answer, completion_text

def higher_lower_reward(prompts, completions, expected, **kwargs):
    out = []
    for completion, target in zip(completions, expected):
        answer = addition_answer(completion_text(completion))  # the last number in the completion, or None
        # your code: append {"score": ..., "feedback": ...} for this completion
        raise NotImplementedError("fill in higher_lower_reward")
    return out

# %% id="nb01-30"
from sdpo_lite.course.exercises import check, show_solution

check("higher_lower", higher_lower_reward)

# %% [markdown] id="nb01-31"
# ## Summary
#
# - SDPO turns feedback text into a per-token target: the model's own predictions, conditioned on the feedback
#   (equation 2), compared on the student's top-100 tokens plus a tail (equation 3, checked by hand in section 4).
# - The teacher is only as good as the feedback: "68, not 67" points at the digits; "Wrong." does not, and here it
#   moved the teacher to another wrong digit (section 3).
# - On a 135M model and 24 steps pure SDPO is worse than GRPO: -19.7 points ± 7.2 over five seeds (the README's
#   regime map, base cell). Where the reward is sparse (three-digit operands, 1.7% to start) it is better: +5.2
#   points ± 4.7, because GRPO's all-wrong groups teach nothing and the feedback still does (section 7). The blend
#   (0.9 GRPO + 0.1 SDPO) is level with GRPO in this notebook's setting (+2.0 points ± 6.7, no measurable
#   difference) and the best of the three where the reward is sparse (+14.5 points ± 10.3 over GRPO). The paper's caveat applies: the
#   self-teacher helps a model that can learn from context. The GPU profile (Qwen2.5-0.5B-Instruct, chosen
#   automatically with a CUDA GPU and the Hub) runs 100 steps of 4 prompts x 8 generations.
# - You have seen every argument of an SDPO run (section 6): `GRPOConfig` + `SDPOConfig` + a reward that returns
#   `{"score", "feedback"}`. That is all it takes to point SDPO at your own task.
#
# Next: notebook 03 uses SDPO where it was designed to shine, rich feedback from executed code (error messages,
# failing tests); notebook 04 asks whether SDPO on one hard question finds an answer in fewer attempts.
