"""Tasks: small, versioned JSONL files in ``data/`` turned into ``datasets.Dataset`` objects.

Every task is a folder ``data/<task>/`` with one ``<split>.jsonl`` per split (``train``, ``heldout``).
The files are generated once by a script kept next to them and committed, so every run of the course
trains and evaluates on exactly the same problems (see ``data/README.md``).

Each task registers the fields a row must have (and their types) and the function that checks a
model's answer. Loading validates every row, so a broken file fails at once with the file, line and
field to fix, rather than as a ``KeyError`` deep inside a training step.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from sdpo_lite.course.sandbox import run_tests
from sdpo_lite.reprompt import split_thinking

if TYPE_CHECKING:  # datasets is imported lazily: it is slow to import and the checkers don't need it
    from datasets import Dataset

__all__ = [
    "TaskSpec",
    "TASKS",
    "register_task",
    "data_root",
    "task_path",
    "read_rows",
    "render_jsonl",
    "write_splits",
    "load_task",
    "to_conversational",
    "completion_text",
    "addition_answer",
    "check_addition",
    "extract_code",
    "check_code",
    "parity_answer",
    "check_parity",
]


# --------------------------------------------------------------------------------------------------
# The task registry
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskSpec:
    """What a task's rows look like and how an answer is judged.

    ``fields`` maps each required field to its type (or tuple of types); extra fields are allowed.
    ``checker(completion, row[answer_field])`` says whether a model's completion is correct; with
    ``answer_field=None`` the checker gets the whole row (a code task needs the entry point *and* the tests).
    ``json_fields`` are stored in the ``Dataset`` as JSON text: Arrow needs one type per column, and a test's
    ``expected`` value is an int in one row and a list in the next.
    """

    fields: dict[str, type | tuple[type, ...]]
    checker: Callable[[str, Any], bool] | None = None
    answer_field: str | None = "expected"
    description: str = ""
    splits: tuple[str, ...] = field(default=("train", "heldout"))
    json_fields: tuple[str, ...] = ()


TASKS: dict[str, TaskSpec] = {}


def register_task(name: str, spec: TaskSpec) -> TaskSpec:
    """Add (or replace) a task, e.g. ``register_task("parity", TaskSpec({...}, checker=...))``."""
    TASKS[name] = spec
    return spec


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------
def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding the tasks: ``data_dir``, else ``$SDPO_DATA``, else the repository's ``data/``."""
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get("SDPO_DATA"):
        return Path(os.environ["SDPO_DATA"])
    return Path(__file__).resolve().parents[2] / "data"  # sdpo_lite/course/tasks.py -> the checkout


def task_path(name: str, split: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Path of a task split's JSONL file (it need not exist yet)."""
    return data_root(data_dir) / name / f"{split}.jsonl"


def _type_name(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(t.__name__ for t in types)


def _check_type(value: Any, expected: type | tuple[type, ...]) -> bool:
    """isinstance, except that a bool is not accepted as an int (``True`` is not a sum)."""
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def read_rows(path: str | os.PathLike, spec: TaskSpec | None = None) -> list[dict]:
    """Read a JSONL file, validating each row against ``spec``; blank lines are skipped.

    Raises ``ValueError`` naming the file, the (1-based) line number and the offending field.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such task file")
    rows: list[dict] = []
    seen_uids: dict[Any, int] = {}
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
            for name, expected in (spec.fields if spec else {}).items():
                if name not in row:
                    raise ValueError(f"{where}: missing required field {name!r}")
                if not _check_type(row[name], expected):
                    raise ValueError(
                        f"{where}: field {name!r} must be {_type_name(expected)}, "
                        f"got {type(row[name]).__name__} ({row[name]!r})"
                    )
            if "uid" in row:
                if row["uid"] in seen_uids:
                    raise ValueError(f"{where}: field 'uid' duplicates line {seen_uids[row['uid']]} ({row['uid']!r})")
                seen_uids[row["uid"]] = lineno
            rows.append(row)
    return rows


def render_jsonl(rows: list[dict]) -> str:
    """The task-file format that `read_rows` reads: one JSON object per line, keys in order, trailing newline."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_splits(folder: str | os.PathLike, splits: dict[str, list[dict]]) -> None:
    """Write `<folder>/<split>.jsonl` for each split (what the `data/make_<task>.py` generators do once)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        (folder / f"{split}.jsonl").write_text(render_jsonl(rows), encoding="utf-8")
        print(f"wrote {len(rows)} rows to {folder / f'{split}.jsonl'}")


def load_task(name: str, split: str = "train", data_dir: str | os.PathLike | None = None) -> "Dataset":
    """Load a registered task's split as a ``datasets.Dataset`` (columns as in the file)."""
    from datasets import Dataset

    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; registered tasks: {sorted(TASKS)}")
    spec = TASKS[name]
    rows = read_rows(task_path(name, split, data_dir), spec)
    if not rows:
        raise ValueError(f"{task_path(name, split, data_dir)}: the file has no rows")
    return Dataset.from_list([{**row, **{f: json.dumps(row[f]) for f in spec.json_fields}} for row in rows])


def to_conversational(
    dataset: "Dataset", system: str | None = None, column: str = "prompt"
) -> "Dataset":
    """Turn a plain-text ``prompt`` column into chat messages (TRL's conversational format).

    ``"What is 2 + 3?"`` becomes ``[{"role": "user", "content": "What is 2 + 3?"}]`` (with a system
    message first when ``system`` is given). TRL then applies the model's chat template itself, and
    the other columns are kept, because TRL passes them on to the reward functions.
    """
    from datasets import Dataset

    def messages(text: str) -> list[dict[str, str]]:
        head = [{"role": "system", "content": system}] if system else []
        return head + [{"role": "user", "content": text}]

    # from_list rather than .map: same result for these small sets, without a progress bar.
    return Dataset.from_list([{**row, column: messages(row[column])} for row in dataset])


# --------------------------------------------------------------------------------------------------
# The addition task
# --------------------------------------------------------------------------------------------------
# An integer, optionally negative (a minus right after a digit is subtraction, not a sign), optionally
# with thousands separators, optionally followed by a decimal part (so "68.5" is not read as "5").
_NUMBER = re.compile(r"(?<!\d)(-?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?")


def addition_answer(text: str) -> int | None:
    """The model's answer: the LAST number in the text, as an int, or None.

    The last number, because chatty models restate the question first: SmolLM2 writes
    "27 + 82 equals 109." A number with a non-zero fractional part ("68.5") is not an integer answer
    and gives None; "68.0" counts as 68.
    """
    matches = list(_NUMBER.finditer(text or ""))
    if not matches:
        return None
    sign, digits, fraction = matches[-1].groups()
    if fraction and set(fraction) != {"0"}:
        return None
    value = int(digits.replace(",", ""))
    return -value if sign else value


def check_addition(text: str, expected: int) -> bool:
    """Whether the completion's answer equals ``expected``."""
    answer = addition_answer(text)
    return answer is not None and answer == int(expected)


ADDITION_TASKS = {  # the same rows and checker; three-digit operands make the reward sparser (benchmarks/regimes.py)
    "addition": "Two-digit addition: 'What is 23 + 45? Answer with just the number.' -> 68",
    "addition3": "Three-digit addition, a sparser reward: 'What is 234 + 567? ...' -> 801",
}
for _name, _description in ADDITION_TASKS.items():
    register_task(_name, TaskSpec(fields={"uid": str, "prompt": str, "expected": int}, checker=check_addition,
                                  description=_description))
# Notebook 04's hard questions: held-out addition rows the untrained model rarely solves, chosen by measurement
# (benchmarks/test_time.py select), each with the pass@1 measured when it was chosen.
register_task("addition_hard", TaskSpec(fields={"uid": str, "prompt": str, "expected": int,
                                                "selection_pass_at_1": float},
                                        checker=check_addition, splits=("heldout",),
                                        description="Held-out addition questions SmolLM2-135M rarely solves"))


# --------------------------------------------------------------------------------------------------
# The code task
# --------------------------------------------------------------------------------------------------
def completion_text(completion) -> str:
    """The text of a completion: a string, a chat-message list, a single message, or content parts.

    For a message list we join the assistant messages (normally there is exactly one).
    """
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _content_text(completion.get("content", ""))
    if isinstance(completion, (list, tuple)):
        messages = [m for m in completion if isinstance(m, dict)]
        assistant = [m for m in messages if m.get("role", "assistant") == "assistant"]
        chosen = assistant or messages[-1:]
        return "\n".join(_content_text(m.get("content", "")) for m in chosen)
    return str(completion)


def _content_text(content) -> str:
    """Message content may be a string or a list of parts like ``{"type": "text", "text": ...}``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(text: str) -> str:
    """The program in a completion: the first fenced block if there is one, else the whole text.

    A reasoning model's ``<think>...</think>`` part is dropped first. A fence the model never
    closed (generation hit the token limit) still counts: we take everything after it.
    """
    _, after = split_thinking(text or "")
    text = text or "" if after is None else after  # an unclosed <think>: no answer yet, so read the whole text
    match = _FENCE.search(text)
    if match:
        return match.group(2).rstrip() + "\n"
    return text


def check_code(completion: str, row: dict) -> bool:
    """Whether the completion's code passes every test of ``row``, run in the sandbox (never in this process)."""
    return run_tests(extract_code(completion_text(completion)), row["entry_point"], row["tests"]).score == 1.0


register_task(
    "code",
    TaskSpec(
        fields={"uid": str, "prompt": str, "entry_point": str, "tests": list, "category": str},
        checker=check_code,
        answer_field=None,
        json_fields=("tests",),
        description="Write a small Python function; judged by running its unit tests in the sandbox",
    ),
)


# --------------------------------------------------------------------------------------------------
# The parity task: even or odd, reasoning inside <think></think>
# --------------------------------------------------------------------------------------------------
_PARITY_WORD = re.compile(r"\b(even|odd)\b", re.IGNORECASE)
_ECHO = re.compile(r"\b(even\s+or\s+odd|odd\s+or\s+even)\b", re.IGNORECASE)


def parity_answer(text: str) -> str | None:
    """The model's answer, ``"even"``, ``"odd"`` or None: the parity word used after the closing ``</think>``.

    Tolerant, because small models are chatty: any case, punctuation and extra words ("The answer is \"Odd\"."),
    a reply without a think block is read whole, and an echo of the question ("Even or odd: 876") is not an answer.
    Not fooled by hedging: an answer that says both ("1. 543 is even. 2. 543 is odd.") is no answer, or RL learns
    to list both and collect half the reward.
    """
    words = parity_words(text)
    return words.pop() if len(words) == 1 else None


def parity_words(text: str) -> set[str]:
    """The parity words ("even", "odd") used after ``</think>``, lower-cased; an echo of the question is skipped."""
    _, answer = split_thinking(text)
    return {w.lower() for w in _PARITY_WORD.findall(_ECHO.sub(" ", answer or ""))}


def check_parity(text: str, expected: str) -> bool:
    """Whether the completion's answer is ``expected`` ("even" or "odd")."""
    return parity_answer(text) == str(expected).strip().lower()


register_task(
    "parity",
    TaskSpec(
        fields={"uid": str, "prompt": str, "number": int, "expected": str},
        checker=check_parity,
        description="Even or odd, thinking inside <think></think>: 'Is 347 even or odd? ...' -> 'odd'",
    ),
)
