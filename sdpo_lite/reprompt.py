"""Reprompting: turn a group of scored rollouts into teacher prompts. Pure functions; no model in sight.

For each rollout the self-teacher reads the original question plus, when another rollout of the same prompt
succeeded, that peer's answer as a demonstration, and/or the environment's feedback on this rollout. A rollout
with neither gets no teacher and is masked out of the loss.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from sdpo_lite.config import SDPOConfig


@dataclass
class RolloutRecord:
    """One rollout as a learner (and the widgets) should see it after a training step."""

    prompt: object  # the dataset prompt: a string, or a list of chat messages
    completion: str
    score: float  # the raw reward (weighted sum over reward functions), NaN when unscorable
    feedback: str | None
    group: int  # rollouts of the same prompt share a group
    teacher_prompt: str | None = None  # the full teacher prompt text (chat template applied); None = no teacher
    teacher_message: str | None = None  # the reprompted user message, before the chat template
    demo_used: bool = False
    feedback_used: bool = False
    feedback_ignored: bool = False  # the rollout succeeded, so its feedback was not shown to a teacher
    demo_index: int | None = None  # index (within the gathered batch) of the peer whose answer is shown
    thinking_stripped: bool = False
    spans: dict = field(default_factory=dict)  # {"demonstration"|"feedback": (start, end)} in teacher_message
    completion_ids: list = field(default_factory=list)
    teacher_truncated: bool = False

    @property
    def teacher_kind(self) -> str:
        """What its teacher was shown: "demo + feedback", "demo", "feedback" or "no teacher"."""
        if self.demo_used and self.feedback_used:
            return "demo + feedback"
        return "demo" if self.demo_used else "feedback" if self.feedback_used else "no teacher"


# ----------------------------------------------------------------------------------------------------------------
# Who gets which demonstration
# ----------------------------------------------------------------------------------------------------------------
def is_success(score, success_threshold: float) -> bool:
    """A rollout succeeded when its raw reward reaches the threshold; None/NaN (unscorable) never succeeds."""
    return score is not None and not math.isnan(score) and score >= success_threshold


def choose_demonstrations(groups, scores, *, success_threshold, dont_reprompt_on_self_success=True, usable=None):
    """For each rollout, the index of the first successful rollout of its group, or None.

    `scores` are RAW rewards: advantages are group-centred, so a group where everybody failed would still have
    "positive" rollouts. NaN (unscorable) never counts as a success. With `dont_reprompt_on_self_success` a
    rollout never sees itself, so a lone success gets no demonstration. `usable[i] = False` keeps a success from
    demonstrating (e.g. its text is empty: TRL's mask_truncated_completions masks a truncated answer out entirely).
    """
    usable = [True] * len(scores) if usable is None else usable
    successes: dict = {}
    for i, (g, s) in enumerate(zip(groups, scores, strict=True)):
        if is_success(s, success_threshold) and usable[i]:
            successes.setdefault(g, []).append(i)
    chosen = []
    for i, g in enumerate(groups):
        peers = [j for j in successes.get(g, []) if not (dont_reprompt_on_self_success and j == i)]
        chosen.append(peers[0] if peers else None)
    return chosen


def strip_thinking(text: str, tag: str | None = "think") -> tuple[str, bool]:
    """Remove <tag>...</tag> blocks (across lines) from a demonstration. Returns (text, whether anything went).

    Decode demonstrations with special tokens kept: if <think> is a special token, skip_special_tokens=True
    deletes the tags and leaves the thinking behind, and this regex then finds nothing to strip.
    """
    if not tag:
        return text, False
    stripped = re.sub(rf"<{tag}>.*?</{tag}>", "", text, flags=re.DOTALL)
    return stripped.strip(), stripped != text


def split_thinking(text: str, tag: str = "think") -> tuple[str | None, str | None]:
    """``(thinking, answer)`` of a completion: the text inside the last ``<tag>...</tag>`` and the text after it.

    No tags at all: ``(None, text)``, the whole text is the answer. An opened tag that is never closed (the model
    ran out of tokens while thinking): ``(rest, None)``, there is no answer yet.
    """
    text = text or ""
    close = f"</{tag}>"
    if close in text:
        before, answer = text.rsplit(close, 1)
        return before.rsplit(f"<{tag}>", 1)[-1], answer
    if f"<{tag}>" in text:
        return text.rsplit(f"<{tag}>", 1)[1], None
    return None, text



# ----------------------------------------------------------------------------------------------------------------
# The teacher's message
# ----------------------------------------------------------------------------------------------------------------
def last_user_text(prompt) -> str:
    """The raw text the template's {prompt} receives: a plain prompt, or the last user message's content."""
    if isinstance(prompt, str):
        return prompt
    for message in reversed(prompt):
        if message.get("role") == "user":
            content = message["content"]
            if isinstance(content, str):
                return content
            return "".join(part.get("text", "") for part in content if part.get("type") == "text")
    raise ValueError("a conversational prompt needs at least one message with role 'user'")


def _fill(template: str, parts: dict) -> tuple[str, dict]:
    """Fill {placeholders} in `template` and return (text, {name: (start, end)} of each non-empty part)."""
    out, spans, pos = [], {}, 0
    for piece in re.split(r"(\{\w+\})", template):
        name = piece[1:-1] if re.fullmatch(r"\{\w+\}", piece) else None
        if name in parts:
            value, inner = parts[name]  # inner: (offset, length) of the raw text inside the value, or None
            if inner is not None:
                spans[name] = (pos + inner[0], pos + inner[0] + inner[1])
            piece = value
        out.append(piece)
        pos += len(piece)
    return "".join(out), spans


def _section(template: str, key: str, raw: str | None):
    """Wrap raw text in its section template; remember where the raw text sits inside the section."""
    if raw is None:
        return "", None
    before = template.split("{" + key + "}")[0]
    return template.replace("{" + key + "}", raw), (len(before), len(raw))


def build_teacher_message(prompt_text: str, demonstration: str | None, feedback: str | None, config: SDPOConfig):
    """The reprompted user message and the character spans of the inserted demonstration and feedback."""
    parts = {"prompt": (prompt_text, None),
             "demonstration": _section(config.solution_template, "demonstration", demonstration),
             "feedback": _section(config.feedback_template, "feedback", feedback)}
    return _fill(config.teacher_prompt_template, parts)


def teacher_conversation(prompt, message: str):
    """Replace the last user message (keeping system and earlier turns) or the plain prompt with `message`."""
    if isinstance(prompt, str):
        return message
    idx = max(i for i, m in enumerate(prompt) if m.get("role") == "user")
    return [*prompt[:idx], {"role": "user", "content": message}, *prompt[idx + 1:]]


def plan_teachers(prompts, demos, feedbacks, config: SDPOConfig, *, groups, scores):
    """Decide, for every rollout of a (globally gathered) batch, its demonstration and feedback.

    prompts, demos (demonstration-ready completion texts), feedbacks (str or None), groups, scores: one per
    rollout. Returns RolloutRecord-like dicts with teacher_message and spans filled (no chat template yet).

    Feedback is read only for rollouts that FAILED (raw reward below success_threshold, or unscorable). The
    template calls it "feedback from your unsuccessful earlier attempt", and the official environments return no
    feedback for a success; a reward that says "Correct!" on success would otherwise give a lone success a
    teacher that is told its right answer was wrong. The plan records this as `feedback_ignored`.
    """
    chosen = choose_demonstrations(groups, scores, success_threshold=config.success_threshold,
                                   dont_reprompt_on_self_success=config.dont_reprompt_on_self_success,
                                   usable=[bool(d and d.strip()) for d in demos])
    succeeded = [is_success(s, config.success_threshold) for s in scores]
    plans = []
    for i, prompt in enumerate(prompts):
        given = feedbacks[i] if feedbacks[i] and feedbacks[i].strip() else None
        fb = None if succeeded[i] else given
        plan = {"demo_index": None, "demo_used": False, "feedback_used": False, "teacher_message": None,
                "spans": {}, "thinking_stripped": False, "feedback_ignored": given is not None and succeeded[i]}
        if config.reprompt_teacher:
            demo = None
            if chosen[i] is not None:
                demo, plan["thinking_stripped"] = strip_thinking(demos[chosen[i]], config.thinking_tag)
                plan["demo_index"] = chosen[i]
            use_fb = config.include_feedback and fb is not None and not (
                config.feedback_only_without_solution and demo is not None)
            if demo is not None or use_fb:
                message, spans = build_teacher_message(last_user_text(prompt), demo, fb if use_fb else None, config)
                plan.update(teacher_message=message, spans=spans, demo_used=demo is not None, feedback_used=use_fb)
        plans.append(plan)
    return plans


def teacher_prompt_texts(prompts, plans, tokenizer, chat_template_kwargs=None) -> list[str | None]:
    """Each plan's teacher prompt as the model reads it (chat template applied); None where a rollout has no teacher."""
    return [render_teacher_prompt(prompt, plan["teacher_message"], tokenizer, chat_template_kwargs)
            if plan["teacher_message"] else None for prompt, plan in zip(prompts, plans)]


def rollout_records(plans, teacher_prompts, *, prompts, completions, scores, feedback, groups,
                    completion_ids=None, teacher_truncated=None) -> list[RolloutRecord]:
    """One RolloutRecord per rollout: what it wrote, how it scored, and what its teacher read (all lists aligned)."""
    n = len(plans)
    completion_ids = completion_ids or [[] for _ in range(n)]
    teacher_truncated = teacher_truncated or [False] * n
    return [RolloutRecord(prompt=prompts[i], completion=completions[i], score=scores[i], feedback=feedback[i],
                          group=groups[i], teacher_prompt=teacher_prompts[i], completion_ids=completion_ids[i],
                          teacher_truncated=teacher_truncated[i], **plans[i]) for i in range(n)]


# ----------------------------------------------------------------------------------------------------------------
# Tokens
# ----------------------------------------------------------------------------------------------------------------
def render_teacher_prompt(prompt, message: str, tokenizer, chat_template_kwargs=None) -> str:
    """The teacher prompt as text: chat-templated (with the generation prompt) for conversational prompts."""
    if isinstance(prompt, str):
        return message
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("conversational prompts need a tokenizer with a chat template: set tokenizer.chat_template "
                         "or pass plain-string prompts")
    return tokenizer.apply_chat_template(teacher_conversation(prompt, message), tokenize=False,
                                         add_generation_prompt=True, **(chat_template_kwargs or {}))


def tokenize_teacher_prompts(texts, tokenizer, *, max_length: int, truncation: str = "left"):
    """Token ids of each teacher prompt, truncated to max_length. Returns (list of id lists, list of truncated?).

    truncation="left" keeps the LAST max_length tokens (the end, which the completion follows); "right" keeps the
    first ones (the official choice).
    """
    ids_list, truncated = [], []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        truncated.append(len(ids) > max_length)
        if len(ids) > max_length:
            ids = ids[-max_length:] if truncation == "left" else ids[:max_length]
        ids_list.append(ids)
    return ids_list, truncated


def left_pad(ids_list, pad_id: int):
    """Left-pad id lists into (ids, mask) lists of one length; the completion then follows without a gap."""
    width = max((len(ids) for ids in ids_list), default=0)
    ids = [[pad_id] * (width - len(x)) + list(x) for x in ids_list]
    mask = [[0] * (width - len(x)) + [1] * len(x) for x in ids_list]
    return ids, mask


def demonstration_text(completion_ids, tokenizer, thinking_tag: str | None) -> str:
    """Decode a completion for use as a demonstration, keeping thinking tags even when they are special tokens.

    Other special tokens (EOS, padding, chat markers) are dropped, as skip_special_tokens would.
    """
    keep = set()
    if thinking_tag:
        for tag in (f"<{thinking_tag}>", f"</{thinking_tag}>"):
            tid = tokenizer.convert_tokens_to_ids(tag)
            if isinstance(tid, int) and tid != tokenizer.unk_token_id:
                keep.add(tid)
    added = getattr(tokenizer, "added_tokens_decoder", {})
    special = set(tokenizer.all_special_ids) | {i for i, tok in added.items() if getattr(tok, "special", False)}
    ids = [t for t in completion_ids if t not in special or t in keep]
    return tokenizer.decode(ids, skip_special_tokens=False).strip()
