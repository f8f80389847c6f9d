"""sdpo_lite.course.tasks: the committed task files, schema validation, chat conversion, the addition checker."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from sdpo_lite.course.tasks import (TASKS, TaskSpec, addition_answer, check_addition, load_task, register_task,
                                    task_path, to_conversational)

REPO = Path(__file__).resolve().parent.parent
PROMPT = re.compile(r"What is (\d\d) \+ (\d\d)\? Answer with just the number\.")


# ------------------------------------------------------------------------------------------------
# The committed addition files
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split, size", [("train", 50), ("heldout", 120)])
def test_addition_splits(split, size):
    ds = load_task("addition", split)
    assert len(ds) == size
    assert ds.column_names == ["uid", "prompt", "expected"]
    assert len(set(ds["uid"])) == size
    for row in ds:
        a, b = map(int, PROMPT.fullmatch(row["prompt"]).groups())
        assert row["expected"] == a + b and isinstance(row["expected"], int)


def test_addition_train_and_heldout_are_disjoint():
    def pairs(split):
        return {tuple(sorted(map(int, PROMPT.fullmatch(p).groups()))) for p in load_task("addition", split)["prompt"]}

    assert not pairs("train") & pairs("heldout")


def test_committed_files_match_the_generator():
    """The JSONL is generated once and committed; the script must still reproduce it byte for byte."""
    spec = importlib.util.spec_from_file_location("make_addition", REPO / "data" / "make_addition.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for task, digits in module.TASKS.items():
        for split, rows in module.make_splits(digits=digits, task=task).items():
            assert task_path(task, split).read_text(encoding="utf-8") == module.render(rows)
    three = load_task("addition3", "heldout")
    three_digits = re.compile(r"What is (\d{3}) \+ (\d{3})\? Answer with just the number\.")
    assert len(three) == 120 and all(three_digits.fullmatch(p) for p in three["prompt"])


def test_hard_addition_is_the_measured_selection_of_held_out_rows():
    """data/addition_hard: held-out rows, unchanged, that the selection measured at 1-3 successes in 32 samples
    and not greedily correct (benchmarks/results/test_time_selection.json holds every question's count)."""
    heldout = {r["uid"]: r for r in load_task("addition", "heldout")}
    hard = list(load_task("addition_hard", "heldout"))
    measured = {q["uid"]: q for q in json.loads((REPO / "benchmarks" / "results" /
                                                 "test_time_selection.json").read_text())["questions"]}
    assert len(hard) == 12 and TASKS["addition_hard"].splits == ("heldout",)
    for row in hard:
        fields = {k: v for k, v in row.items() if k != "selection_pass_at_1"}
        assert fields == heldout[row["uid"]]
        count = measured[row["uid"]]
        assert 1 <= count["successes"] <= 3 and not count["greedy_correct"]
        assert row["selection_pass_at_1"] == round(count["successes"] / count["n"], 4)
    qualified = [u for u, q in measured.items() if 1 <= q["successes"] <= 3 and not q["greedy_correct"]]
    assert [r["uid"] for r in hard] == qualified[:12]  # the first twelve in held-out order, none skipped


def test_task_path_and_data_dir_override(tmp_path, monkeypatch):
    assert task_path("addition", "train") == REPO / "data" / "addition" / "train.jsonl"
    assert task_path("addition", "train", data_dir=tmp_path) == tmp_path / "addition" / "train.jsonl"
    monkeypatch.setenv("SDPO_DATA", str(tmp_path))
    assert task_path("addition", "heldout") == tmp_path / "addition" / "heldout.jsonl"


# ------------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------------
GOOD = {"uid": "u0", "prompt": "What is 10 + 11? Answer with just the number.", "expected": 21}


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "addition" / "train.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "bad, field, words",
    [
        ({"uid": "u2", "prompt": "What is 1 + 2?"}, "expected", "missing"),
        ({**GOOD, "uid": "u2", "expected": "21"}, "expected", "must be int, got str"),
        ({**GOOD, "uid": "u2", "expected": True}, "expected", "must be int, got bool"),
        ({**GOOD, "uid": "u2", "prompt": None}, "prompt", "must be str"),
        ({**GOOD, "uid": "u0"}, "uid", "duplicates line 1"),
    ],
)
def test_malformed_row_names_file_line_and_field(tmp_path, bad, field, words):
    path = _write(tmp_path, [json.dumps(GOOD), json.dumps({**GOOD, "uid": "u1"}), "", json.dumps(bad)])
    with pytest.raises(ValueError) as err:
        load_task("addition", "train", data_dir=tmp_path)
    message = str(err.value)
    assert str(path) in message
    assert "line 4" in message  # 1-based, blank lines counted
    assert repr(field) in message
    assert words in message


def test_invalid_json_names_file_and_line(tmp_path):
    path = _write(tmp_path, [json.dumps(GOOD), '{"uid": "u1", "prompt": '])
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 2: not valid JSON")):
        load_task("addition", "train", data_dir=tmp_path)


def test_missing_file_and_unknown_task(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.jsonl"):
        load_task("addition", "train", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown task 'nope'.*addition"):
        load_task("nope", "train")


def test_registering_a_new_task(tmp_path, monkeypatch):
    monkeypatch.setitem(TASKS, "parity", TaskSpec({"uid": str, "bits": str, "expected": str}))
    (tmp_path / "parity").mkdir()
    (tmp_path / "parity" / "train.jsonl").write_text('{"uid": "p0", "bits": "1011", "expected": "odd"}\n')
    assert load_task("parity", "train", data_dir=tmp_path)[0]["expected"] == "odd"
    spec = register_task("parity", TaskSpec({"uid": str, "bits": int}))
    assert TASKS["parity"] is spec
    with pytest.raises(ValueError, match="'bits' must be int"):
        load_task("parity", "train", data_dir=tmp_path)


def test_to_conversational_keeps_other_columns():
    ds = load_task("addition", "train")
    chat = to_conversational(ds)
    assert chat.column_names == ds.column_names
    assert chat[0]["prompt"] == [{"role": "user", "content": ds[0]["prompt"]}]
    assert chat[0]["expected"] == ds[0]["expected"]
    with_system = to_conversational(ds, system="Answer with a number.")
    assert [m["role"] for m in with_system[0]["prompt"]] == ["system", "user"]


# ------------------------------------------------------------------------------------------------
# The answer checker
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, answer",
    [
        ("68", 68),
        ("27 + 82 equals 109.", 109),  # the last number, not the first
        ("23 + 45 = 68\n\nThis is a classic example", 68),
        ("The answer is 1,234.", 1234),
        ("It is 68.0", 68),
        ("About 68.5", None),  # not an integer answer (and not "5")
        ("The result is -7", -7),
        ("10-20", 20),  # a minus after a digit is subtraction, not a sign
        ("**Answer:** 173", 173),
        ("<think>maybe 12</think>The answer is 13", 13),
        ("I don't know", None),
        ("", None),
        (None, None),
    ],
)
def test_addition_answer(text, answer):
    assert addition_answer(text) == answer


def test_check_addition():
    assert check_addition("23 + 45 = 68", 68)
    assert not check_addition("23 + 45 = 78", 68)
    assert not check_addition("no idea", 68)
    assert TASKS["addition"].checker is check_addition
