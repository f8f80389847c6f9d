"""The reward contract: what a reward function hands SDPOTrainer, checked, with errors that name the fix.

SDPO learns from feedback, so a reward function keeps TRL's signature and may return, per completion:
    a float (or int)                      a score, as for GRPO
    None                                  unscorable (TRL averages over the other reward functions)
    {"score": float, "feedback": str}     a score and the text the self-teacher reads ("Test failed: ...")
The trainer wraps every reward function with `capture_feedback`: TRL receives plain scores, and the feedback
strings stay with their rollouts until `reprompt` puts them into the teacher prompts.

This module needs torch only (not TRL), so a reward can be checked against the contract anywhere:
    scores, feedback = split_reward_outputs(my_reward(prompts, completions, **columns), len(completions))

The course's own rewards (addition, parity, code execution) live in `sdpo_lite.course.rewards`; their names
are still importable from here (`from sdpo_lite.rewards import code_execution_reward`), loaded on first use so
that this module imports nothing from the course.
"""
from __future__ import annotations

import functools
import inspect
import logging
import math
from typing import Callable

import torch

logger = logging.getLogger(__name__)

__all__ = ["split_reward_outputs", "capture_feedback"]


def split_reward_outputs(outputs, expected: int, name: str = "reward function"):
    """Turn a reward function's outputs into (scores, feedback), with errors that name the fix.

    Accepted per completion: a float/int, None (unscorable, as TRL allows) or {"score": x, "feedback": str}.
    """
    if not isinstance(outputs, (list, tuple)):
        raise TypeError(f"{name} returned {type(outputs).__name__}; return a list with one score (or "
                        f'{{"score", "feedback"}} dict) per completion')
    if len(outputs) != expected:
        raise ValueError(f"{name} returned {len(outputs)} results for {expected} completions; return exactly one "
                         "per completion, in order")
    scores, feedback = [], []
    for i, out in enumerate(outputs):
        fb = None
        if isinstance(out, dict):
            if "score" not in out:
                raise ValueError(f'{name} returned a dict without "score" at index {i}: {out!r}; use '
                                 '{"score": float, "feedback": str}')
            out, fb = out["score"], out.get("feedback")
            if fb is not None and not isinstance(fb, str):
                raise TypeError(f"{name}: feedback at index {i} is {type(fb).__name__}; it must be a string or None")
        if out is not None:
            if isinstance(out, bool) or not isinstance(out, (int, float)) and not (
                    isinstance(out, torch.Tensor) and out.numel() == 1):
                raise TypeError(f"{name} returned a {type(out).__name__} score at index {i} ({out!r}); scores must "
                                "be numbers (or None for an unscorable completion)")
            out = float(out)
            if math.isnan(out):
                raise ValueError(f"{name} returned NaN at index {i}; return None to mark an unscorable completion")
        scores.append(out)
        feedback.append(fb)
    return scores, feedback


def capture_feedback(reward_func, on_feedback: Callable[[list], None]):
    """Wrap a reward function: validate its output, hand `on_feedback` the feedback list, hand TRL plain floats.

    Functions, functools.partial objects and callable class instances are all wrapped. Feedback comes from the
    native dicts {"score": float, "feedback": str}; or, for code ported from sdpo-rl, from a `last_feedback` list the
    reward callable sets on itself during the call (one str or None per completion; an empty list = no feedback),
    read only when the call returned no dicts. Reward models and async callables are left to TRL (plain scores).
    """
    inner = reward_func
    while isinstance(inner, functools.partial):
        inner = inner.func
    if isinstance(reward_func, torch.nn.Module) or inspect.iscoroutinefunction(inner) or (
            not inspect.isroutine(inner) and inspect.iscoroutinefunction(getattr(inner, "__call__", None))):
        return reward_func  # reward models and async functions return plain scores only
    name = getattr(inner, "__name__", type(inner).__name__)  # TRL's naming: a class instance goes by its class
    told = []  # the sdpo-rl `last_feedback` form is reported once per reward function

    def wrapped(*args, **kwargs):
        outputs = reward_func(*args, **kwargs)
        expected = len(kwargs.get("prompts", args[0] if args else []))
        scores, feedback = split_reward_outputs(outputs, expected, name)
        attached = getattr(reward_func, "last_feedback", getattr(inner, "last_feedback", None))  # partial: its func's
        if attached is not None and not any(isinstance(out, dict) for out in outputs):
            feedback = _attached_feedback(attached, expected, name) or feedback
            if not told and any(fb is not None for fb in feedback):
                told.append(True)
                logger.warning("SDPO: %s reports feedback through `last_feedback` (sdpo-rl's form); it is used. The "
                               "native form needs no attribute: return one {'score': float, 'feedback': str} dict per "
                               "completion, e.g. `return [{'score': s, 'feedback': f} for s, f in zip(scores, "
                               "feedback)]`. Reported once.", name)
        on_feedback(feedback)
        return scores

    # Copy name and docs only: an instance's __dict__ (its last_feedback among it) must not be snapshotted.
    functools.update_wrapper(wrapped, reward_func, updated=())
    wrapped.__name__ = wrapped.__qualname__ = name
    return wrapped


def _attached_feedback(attached, expected: int, name: str):
    """Validate a reward callable's `last_feedback` (sdpo-rl's form). Returns the list, or None when it is empty."""
    fix = (f"set {name}.last_feedback to a new list with one string (or None) per completion, in order, during every "
           "call, or return {'score': float, 'feedback': str} dicts instead")
    if not isinstance(attached, (list, tuple)):
        raise TypeError(f"{name}.last_feedback is a {type(attached).__name__}; {fix}")
    if not attached:
        return None  # declared but not filled: no feedback this call (as sdpo-rl reads it)
    if len(attached) != expected:
        raise ValueError(f"{name}.last_feedback has {len(attached)} entries for {expected} completions (a list left "
                         f"over from an earlier call, or appended to without being reset?); {fix}")
    for i, fb in enumerate(attached):
        if fb is not None and not isinstance(fb, str):
            raise TypeError(f"{name}.last_feedback[{i}] is a {type(fb).__name__} ({fb!r}); {fix}")
    return list(attached)


# The course's rewards, under the names scripts written for sdpo_lite 0.1 import from here.
COURSE_REWARDS = ("code_execution_reward", "addition_reward", "addition_reward_rich", "addition_reward_reply",
                  "make_addition_reward", "parity_reward", "completion_text", "extract_code")


def __getattr__(name):  # PEP 562: the one import of the course by the algorithm layer, on first use only
    if name in COURSE_REWARDS:
        from sdpo_lite.course import rewards as course_rewards

        return getattr(course_rewards, name)
    raise AttributeError(f"module 'sdpo_lite.rewards' has no attribute {name!r}")
