"""Judging a sandboxed run: compare what the harness reported with the tests, and say what went wrong.

This is the reward's meaning for code: a score (1.0 only when every test passed) and one short, specific
message the self-teacher reads, "Test failed: add(1, 2) expected 3, got 0", "Timed out after 4 s while running
f(10)", "ZeroDivisionError: division by zero (line 3: return a / b)". The comparison happens here, in the
trainer's process, on plain JSON values: the expected values never enter the child, and no object of the
candidate's is ever compared (`sandbox.py`, layer 7). Standard library only.
"""
from __future__ import annotations

import json
import math
import signal
from dataclasses import dataclass, field


@dataclass
class ExecutionResult:
    """What happened when a program ran against its tests.

    ``message`` is short, specific feedback meant for a model (and a human):
    "All 3 tests passed.", "Test failed: add(1, 2) expected 3, got 0", "Timed out after 4 s ...".
    ``error`` is ``None`` when every test ran (passed or not) and otherwise one of
    ``"syntax"``, ``"load"`` (exception while loading), ``"missing"`` (no such function),
    ``"timeout"``, ``"memory"``, ``"exited"``, ``"crashed"``, ``"protocol"``, ``"sandbox"``.
    """

    passed: int
    total: int
    failures: list = field(default_factory=list)
    error: str | None = None
    message: str = ""
    stdout: str = ""
    duration: float = 0.0

    @property
    def all_passed(self) -> bool:
        return self.total > 0 and self.passed == self.total and self.error is None

    @property
    def score(self) -> float:
        return 1.0 if self.all_passed else 0.0

    @property
    def pass_fraction(self) -> float:
        return self.passed / self.total if self.total else 0.0


# ----------------------------------------------------------------------------------------------
# Comparing by value
# ----------------------------------------------------------------------------------------------
def _short(text: str, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def _short_repr(value, limit: int = 60) -> str:
    """repr of a *plain* (JSON-decoded) value, shortened. Never called on candidate objects."""
    return _short(repr(value), limit)


def _plain_expected(value):
    """Tests may be written in Python (tuples) or come from JSON (lists); compare both as lists."""
    if isinstance(value, tuple):
        return [_plain_expected(v) for v in value]
    if isinstance(value, list):
        return [_plain_expected(v) for v in value]
    if isinstance(value, dict):
        return {str(k) if isinstance(k, str) else json.dumps(k): _plain_expected(v) for k, v in value.items()}
    return value


def _same(expected, got) -> bool:
    """Compare two plain values by value (both come from JSON, so no user ``__eq__`` is involved).

    Booleans must match booleans (``True`` is not accepted for ``1``); numbers compare with a tiny
    tolerance so that ``0.1 + 0.2`` passes for ``0.3``.
    """
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(expected) is type(got) and expected == got
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        if isinstance(expected, int) and isinstance(got, int):
            return expected == got
        if math.isnan(expected) or math.isnan(got):
            return math.isnan(expected) and math.isnan(got)
        return math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-9)
    if expected is None or got is None:
        return expected is None and got is None
    if isinstance(expected, str) or isinstance(got, str):
        return type(expected) is type(got) and expected == got
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(_same(e, g) for e, g in zip(expected, got))
    if isinstance(expected, dict) and isinstance(got, dict):
        return expected.keys() == got.keys() and all(_same(expected[k], got[k]) for k in expected)
    return False


def normalise_tests(tests) -> list[tuple[list, object]]:
    """Accept ``[{"args": [...], "expected": ...}, ...]`` (or that list as a JSON string)."""
    if isinstance(tests, str):
        tests = json.loads(tests)
    out = []
    for t in tests or []:
        if isinstance(t, str):
            t = json.loads(t)
        args = t.get("args", [])
        if not isinstance(args, (list, tuple)):
            args = [args]
        out.append((_plain_expected(list(args)), _plain_expected(t.get("expected"))))
    return out


# ----------------------------------------------------------------------------------------------
# The wording of feedback
# ----------------------------------------------------------------------------------------------
def _call_text(entry_point: str, args: list) -> str:
    return f"{entry_point}(" + ", ".join(_short_repr(a, 40) for a in args) + ")"


def _code_line(code: str, lineno) -> str:
    """'line 3: return a / b' for a 1-based line of the candidate's code."""
    if not isinstance(lineno, int) or lineno < 1:
        return ""
    lines = code.splitlines()
    if lineno > len(lines):
        return f"line {lineno}"
    text = lines[lineno - 1].strip()
    return f"line {lineno}: {_short(text, 80)}" if text else f"line {lineno}"


def _exception_text(err: dict, code: str) -> str:
    """'ZeroDivisionError: division by zero (line 3: return a / b)'."""
    etype = _short(str(err.get("type", "Exception")), 60)
    msg = _short(str(err.get("msg", "")), 160)
    where = _code_line(code, err.get("line"))
    text = f"{etype}: {msg}" if msg else etype
    return f"{text} ({where})" if where else text


def _seconds(x: float) -> str:
    return f"{x:g}"




def judge(code, entry_point, cases, report, timed_out, returncode, timeout, memory_mb) -> ExecutionResult:
    """Turn the harness's report (`sandbox.Report`) into a score and one short, specific message.

    `cases` are `normalise_tests(tests)`: the expected values stay in this process, compared by value (`_same`).
    """
    total = len(cases)
    passed = 0
    failures: list[str] = []
    reasons: list[str] = []  # the part of a failure that does not depend on the arguments
    memory_at = None
    for msg, (args, expected) in zip(report.results, cases):
        call = _call_text(entry_point, args)
        if "error" in msg:
            err = msg["error"] if isinstance(msg["error"], dict) else {}
            if err.get("type") == "MemoryError":
                memory_at = call if memory_at is None else memory_at
                reason = "MemoryError"
                failures.append(f"Test failed: {call} ran out of memory (limit {memory_mb} MB)")
            else:
                reason = _exception_text(err, code)
                failures.append(f"Test failed: {call} raised {reason}")
        elif "bad" in msg:
            reason = _short(str(msg["bad"]), 100)
            failures.append(f"Test failed: {call} {reason} (expected {_short_repr(expected)})")
        elif "value" in msg and _same(expected, msg["value"]):
            passed += 1
            continue
        else:
            reason = None  # a wrong value: always worth showing
            failures.append(f"Test failed: {call} expected {_short_repr(expected)}, got {_short_repr(msg.get('value'))}")
        reasons.append(reason)

    def finish(error, headline, show_failures=True):
        lines = [headline] if headline else []
        if show_failures:
            shown = failures[:1]
            if len(failures) > 1 and (reasons[1] is None or reasons[1] != reasons[0]):
                shown.append(failures[1])  # a second failure, unless it only repeats the first error
            lines += shown
            if len(failures) > len(shown):
                more = len(failures) - len(shown)
                lines.append(f"({more} more test{'s' if more > 1 else ''} failed)")
        lines.append(f"{passed}/{total} tests passed.")
        return ExecutionResult(passed, total, failures, error, "\n".join(lines))

    running = report.running
    where = (f" while running {_call_text(entry_point, cases[running][0])}" if running is not None and running < total
             else " while loading the code" if report.ready and not report.results else "")
    if report.violation:
        return finish("protocol", f"The code interfered with the test harness ({report.violation}).")
    if timed_out:
        if not report.ready:
            return finish("sandbox", "Sandbox error: the test harness did not start in time.")
        return finish("timeout", f"Timed out after {_seconds(timeout)} s{where}.")
    if report.done:
        if report.load_error is not None:
            err = report.load_error
            if err.get("kind") == "syntax":
                return finish("syntax", _exception_text(err, code))
            if err.get("type") == "MemoryError":
                return finish("memory", f"Memory limit exceeded ({memory_mb} MB) while loading the code.")
            if err.get("type") == "SystemExit":
                return finish("load", f"The code called exit ({_exception_text(err, code)}) while loading, "
                                      "before any test ran.")
            return finish("load", f"{_exception_text(err, code)} while loading the code")
        if report.missing is not None:
            return finish("missing", report.missing)
        if passed == total and total > 0:
            return ExecutionResult(passed, total, [], None, f"All {total} tests passed." if total != 1 else "The test passed.")
        if memory_at is not None:
            return finish("memory", f"Memory limit exceeded ({memory_mb} MB) while running {memory_at}.",
                          show_failures=False)
        return finish(None, "" if failures else "No tests were run.")
    # The child ended (or closed the channel) without finishing its report.
    if not report.ready:
        return finish("sandbox", "Sandbox error: the test harness failed to start.")
    if returncode is not None and returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            return finish("timeout", f"Timed out after {_seconds(timeout)} s (CPU time limit){where}.")
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        hint = " (very deep recursion?)" if sig == signal.SIGSEGV else ""
        return finish("crashed", f"The process crashed with {name}{hint}{where}.")
    rc = "?" if returncode is None else returncode
    if not report.results and report.running is None:
        return finish("exited", f"The code ended the process (exit code {rc}) while loading, before any test ran.")
    return finish("exited", f"The code ended the process (exit code {rc}){where}, so only "
                            f"{len(report.results)}/{total} tests ran.")
