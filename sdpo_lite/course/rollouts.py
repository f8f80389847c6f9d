"""Rollouts outside training: sample and score one group, build its teachers, look at its next-token views.

The trainer does this bookkeeping for every prompt of every step; these functions do it for one prompt in a
notebook cell, with the trainer's own reprompting, so a learner sees what a teacher reads before any training.
"""
from __future__ import annotations

from sdpo_lite.config import SDPOConfig
from sdpo_lite.course.views import distribution_view
from sdpo_lite.reprompt import (RolloutRecord, plan_teachers, render_teacher_prompt, rollout_records,
                                teacher_prompt_texts)
from sdpo_lite.rewards import split_reward_outputs


def sample_completions(model, tokenizer, conversations: list[list[dict]], *, n: int = 1, max_new_tokens: int = 64,
                       temperature: float = 1.0, seed: int = 0) -> tuple[list[str], list[list[int]]]:
    """Sample `n` replies to each chat conversation, as TRL samples rollouts (temperature, no top-k/top-p).

    Returns the texts and the token ids of every reply, conversation by conversation (n per conversation). The ids
    end at the end-of-sequence token, included, as TRL's `completion_ids` column does: a reply of exactly
    `max_new_tokens` ids was cut off (what a format reward reads).
    """
    import torch
    from transformers import GenerationConfig

    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # every prompt ends where its reply starts
    try:
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    finally:
        tokenizer.padding_side = side
    torch.manual_seed(seed)
    eos = model.generation_config.eos_token_id
    sampling = GenerationConfig(do_sample=True, temperature=temperature, top_k=0, top_p=1.0, num_return_sequences=n,
                                max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model.generate(**batch, generation_config=sampling)  # (len(conversations) * n, prompt + new)
    finally:
        model.train(was_training)
    new = output[:, batch["input_ids"].shape[1]:].tolist()
    stops = set(eos if isinstance(eos, list) else [eos])
    ids = [row[:next((i + 1 for i, t in enumerate(row) if t in stops), len(row))] for row in new]
    return tokenizer.batch_decode(ids, skip_special_tokens=True), ids


def rollout_group(model, tokenizer, row: dict, reward_func, *, n: int = 8, max_new_tokens: int = 64,
                  temperature: float = 1.0, config: SDPOConfig | None = None, seed: int = 0) -> list:
    """One SDPO step's bookkeeping, without the training: sample `n` answers to `row`, score them, build teachers.

    The trainer does exactly this for every prompt (sdpo_lite.trainer._attach_teachers): raw rewards decide who
    succeeded, a successful peer's answer becomes the demonstration, and failed rollouts without a peer get their
    own feedback. Returns RolloutRecords (teacher_prompt None = no teacher), ready for `widgets.show_teacher_prompt`.
    """
    config = config or SDPOConfig()
    prompt = row["prompt"]  # chat messages (a conversational dataset) or plain text
    prompt = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    completions, _ = sample_completions(model, tokenizer, [prompt], n=n, max_new_tokens=max_new_tokens,
                                        temperature=temperature, seed=seed)
    columns = {k: [v] * n for k, v in row.items() if k != "prompt"}  # dataset columns, one entry per completion
    scores, feedback = split_reward_outputs(reward_func([prompt] * n, completions, **columns), n, "reward_func")
    return teacher_records(prompt, completions, scores, feedback, tokenizer, config)


def teacher_records(prompt, completions: list[str], scores: list[float], feedback: list[str | None], tokenizer,
                    config: SDPOConfig | None = None) -> list:
    """The RolloutRecords of one group (one prompt, its completions): who demonstrates, what each teacher reads.

    The trainer's own reprompting (`reprompt.plan_teachers`, `render_teacher_prompt`), on completions you give, so a
    notebook can show teacher prompts (feedback, a peer's solution, stripped thinking) before any training.
    """
    config = config or SDPOConfig()
    n = len(completions)
    prompts, groups = [prompt] * n, [0] * n
    plans = plan_teachers(prompts, completions, feedback, config, groups=groups, scores=scores)
    return rollout_records(plans, teacher_prompt_texts(prompts, plans, tokenizer), prompts=prompts,
                           completions=completions, scores=scores, feedback=feedback, groups=groups)


def next_token_views(model, tokenizer, prompt, completion: str, teacher_message: str, k: int = 3,
                     temperature: float = 1.0) -> list[dict]:
    """Student and self-teacher next-token distributions along one completion (the picture behind SDPO).

    The student reads `prompt` (chat messages or text); the teacher reads the same conversation with the last user
    message replaced by `teacher_message`. Both score the identical completion tokens (the completion, then the
    end-of-sequence token). The numbers are `views.distribution_view`'s, the widget's. Returns one dict per token:
    the token, p_student(token), p_teacher(token) and each side's top-k as (token, probability) pairs.
    """
    tok = getattr(tokenizer, "tokenizer", tokenizer)
    completion_ids = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    record = RolloutRecord(prompt=prompt, completion=completion, score=float("nan"), feedback=None, group=0,
                           teacher_prompt=render_teacher_prompt(prompt, teacher_message, tokenizer),
                           completion_ids=completion_ids)
    view = distribution_view(model, tokenizer, record, k=k, temperature=temperature)
    return [{"token": view.tokens[t], "p_student": view.p_student[t], "p_teacher": view.p_teacher[t],
             "student_top": [(text, p) for _, text, p in view.student_top[t]],
             "teacher_top": [(text, p) for _, text, p in view.teacher_top[t]]} for t in range(len(view))]


def completion_logits(model, tokenizer, prompt, completion: str, teacher_message: str):
    """Raw next-token logits of student and self-teacher along one completion, for computing the loss by hand.

    The same forward passes as `next_token_views` (and the trainer): the student reads `prompt`, the teacher the
    conversation whose last user message is `teacher_message`; both score the completion's tokens and then the
    end-of-sequence token. Returns (student_logits (T, V), teacher_logits (T, V), completion_ids (T,)).
    """
    import torch

    from sdpo_lite.course.views import student_teacher_logits

    tok = getattr(tokenizer, "tokenizer", tokenizer)
    ids = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    teacher_prompt = render_teacher_prompt(prompt, teacher_message, tokenizer)
    student, teacher = student_teacher_logits(model, tok, prompt, teacher_prompt, ids)  # (1, T, V) each
    return student[0], teacher[0], torch.tensor(ids, device=student.device)
