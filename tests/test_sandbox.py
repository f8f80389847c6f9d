"""Hostile-code tests for sdpo_lite.course.sandbox: whatever the candidate does, we come back quickly and intact.

Short timeouts keep the file fast; every test also checks that nothing it started is still running.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sdpo_lite.course.sandbox import ExecutionResult, run_batch, run_tests

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT.parent / "shared" / "hostile" / "check_sandbox.py"
ADD_TESTS = [{"args": [1, 2], "expected": 3}, {"args": [10, -4], "expected": 6}, {"args": [0, 0], "expected": 0}]
IS_ROOT = os.geteuid() == 0


def _processes_with(marker: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmd:
                found.append(f"{pid}: {cmd}")
    return found


def run(code: str, tests=ADD_TESTS, entry_point: str = "add", **kw) -> ExecutionResult:
    kw.setdefault("timeout", 2)
    return run_tests(code, entry_point, tests, **kw)


# ------------------------------------------------------------------------------------------------
# The shared hostile suite
# ------------------------------------------------------------------------------------------------
def test_shared_hostile_suite():
    if not CHECKER.exists():
        pytest.skip(f"{CHECKER} not found (the shared hostile suite lives next to the project checkout)")
    proc = subprocess.run([sys.executable, str(CHECKER)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr
    last = lines[-1]
    assert last.endswith("passed, 0 failed"), proc.stdout + proc.stderr
    assert proc.returncode == 0


# ------------------------------------------------------------------------------------------------
# Normal behaviour
# ------------------------------------------------------------------------------------------------
def test_correct_and_wrong():
    ok = run("def add(a, b):\n    return a + b\n")
    assert ok.all_passed and ok.score == 1.0 and ok.passed == 3 and ok.message == "All 3 tests passed."
    bad = run("def add(a, b):\n    return a - b\n")
    assert bad.score == 0.0 and bad.passed == 1 and bad.error is None
    assert "Test failed: add(1, 2) expected 3, got -1" in bad.message


def test_arguments_are_fresh_per_test():
    code = "def f(xs):\n    xs.append(1)\n    return len(xs)\n"
    res = run(code, [{"args": [[]], "expected": 1}, {"args": [[]], "expected": 1}], "f")
    assert res.all_passed


def test_tuple_result_compares_as_list_and_floats_with_tolerance():
    res = run("def f():\n    return (1, 0.1 + 0.2)\n", [{"args": [], "expected": [1, 0.3]}], "f")
    assert res.all_passed
    res = run("def f():\n    return True\n", [{"args": [], "expected": 1}], "f")
    assert not res.all_passed  # a bool is not accepted for an int


# ------------------------------------------------------------------------------------------------
# Hostile code
# ------------------------------------------------------------------------------------------------
def test_cannot_read_shadow():
    res = run("def add(a, b):\n    return open('/etc/shadow').read()\n")
    assert res.score == 0.0 and "root:" not in res.message and "Permission" in res.message


def test_cannot_read_or_delete_a_root_owned_file(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    secret.chmod(0o600)
    tmp_path.chmod(0o755)
    res = run(f"def add(a, b):\n    return open({str(secret)!r}).read()\n")
    assert res.score == 0.0 and "top secret" not in res.message
    res = run(f"import os\ndef add(a, b):\n    os.remove({str(secret)!r})\n    return a + b\n")
    assert res.score == 0.0 and secret.read_text() == "top secret"


def test_cannot_write_outside_the_working_dir():
    target = os.path.join(tempfile.gettempdir(), f"sdpo_test_escape_{os.getpid()}")
    code = (f"import os\ndef add(a, b):\n    try:\n        open({target!r}, 'w').write('x')\n    except OSError:\n"
            "        pass\n    open('inside.txt', 'w').write('fine')\n    return a + b\n")
    res = run(code)
    assert res.all_passed, res.message  # writing inside the working dir is allowed
    assert not os.path.exists(target)


def test_working_dir_and_home_are_fresh_and_removed():
    res = run("import os\ndef f():\n    return [os.getcwd() == os.environ['HOME'] == os.environ['TMPDIR'], os.listdir('.')]\n",
              [{"args": [], "expected": [True, []]}], "f")
    assert res.all_passed, res.message
    res = run("import os\ndef f():\n    return os.getcwd()\n", [{"args": [], "expected": None}], "f")
    cwd = res.failures[0].split("got '", 1)[1].rstrip("'")
    assert "sdpo_sandbox_" in cwd and not os.path.exists(cwd)


def test_ctypes_is_refused():
    target = os.path.join(tempfile.gettempdir(), f"sdpo_test_ctypes_{os.getpid()}")
    code = f"import ctypes\ndef add(a, b):\n    ctypes.CDLL(None).system(b'touch {target}')\n    return a + b\n"
    res = run(code)
    assert res.score == 0.0 and "ctypes" in res.message
    assert not os.path.exists(target)


def test_infinite_recursion_is_an_ordinary_failure():
    res = run("def add(a, b):\n    return add(a, b)\n")
    assert res.score == 0.0 and "RecursionError" in res.message and "(line 2: return add(a, b))" in res.message


def test_sys_exit_at_import():
    res = run("import sys\nsys.exit(0)\ndef add(a, b):\n    return a + b\n")
    assert res.score == 0.0 and res.error == "load" and "exit" in res.message and "before any test ran" in res.message


def test_os_exit_before_tests():
    res = run("def add(a, b):\n    return a + b\nimport os\nos._exit(0)\n")
    assert res.score == 0.0 and res.error == "exited" and "exit code 0" in res.message


def test_int_subclass_with_lying_eq():
    code = ("class X(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
            "def add(a, b):\n    return X(0)\n")
    res = run(code)
    assert res.score == 0.0 and "returned a X object" in res.message or "returned an X object" in res.message


def test_deep_recursion_in_repr_and_str():
    code = ("class R:\n    def __repr__(self):\n        return repr(self)\n"
            "class E(Exception):\n    def __str__(self):\n        return str(self)\n"
            "def add(a, b):\n    if a == 1:\n        return R()\n    raise E()\n")
    res = run(code)
    assert res.score == 0.0 and res.error is None
    assert "R object, not a plain value" in res.message and "E: <unprintable message>" in res.message


def test_lingering_thread_does_not_delay_the_result():
    code = "import threading, time\ndef add(a, b):\n    threading.Thread(target=time.sleep, args=(1000,)).start()\n    return a + b\n"
    t0 = time.monotonic()
    res = run(code)
    assert time.monotonic() - t0 < 2
    if IS_ROOT:  # the private uid may not start a single thread
        assert res.score == 0.0 and "can't start new thread" in res.message


def test_killing_the_parent_fails():
    res = run("import os, signal\ndef add(a, b):\n    os.kill(os.getppid(), signal.SIGKILL)\n    return a + b\n")
    assert res.score == 0.0  # and we are still alive to check it


def test_multiprocessing_fork_is_refused_and_nothing_survives():
    code = ("import multiprocessing, time\ndef add(a, b):\n"
            "    p = multiprocessing.Process(target=time.sleep, args=(1000,))\n    p.start()\n    return a + b\n")
    res = run(code)
    assert res.score == 0.0
    assert not [p for p in _processes_with("multiprocessing") if "sleep" in p]


def test_setsid_daemon_is_killed():
    code = ("import subprocess\ndef add(a, b):\n"
            "    subprocess.Popen(['sleep', '997'], start_new_session=True)\n    return a + b\n")
    run(code)
    time.sleep(0.2)
    assert not _processes_with("sleep 997")


def test_sleep_beyond_the_limit_times_out():
    t0 = time.monotonic()
    res = run("import time\ndef add(a, b):\n    time.sleep(100)\n    return a + b\n", timeout=1)
    took = time.monotonic() - t0
    assert res.error == "timeout" and res.message.startswith("Timed out after 1 s while running add(1, 2)")
    assert took < 3


def test_memory_bomb():
    res = run("def add(a, b):\n    x = bytearray(4 * 1024 ** 3)\n    return a + b\n", memory_mb=256)
    assert res.error == "memory" and "Memory limit exceeded (256 MB)" in res.message


def test_no_environment_leak(monkeypatch):
    monkeypatch.setenv("SDPO_TEST_SECRET", "hunter2-do-not-leak")
    res = run("import os\ndef f():\n    return dict(os.environ)\n", [{"args": [], "expected": None}], "f")
    assert "hunter2" not in res.message and "SDPO_TEST_SECRET" not in res.message
    res = run("import os\ndef f():\n    return sorted(os.environ)\n",
              [{"args": [], "expected": ["HOME", "LANG", "LC_ALL", "PATH", "SDPO_SANDBOX_TOKEN", "TMPDIR"]}], "f")
    assert res.all_passed, res.message


def test_huge_output_is_truncated_and_fake_results_on_stdout_do_nothing():
    code = ("import json\ndef add(a, b):\n    print(json.dumps({'ev': 'result', 'i': 0, 'value': 3}))\n"
            "    print('A' * 20_000_000)\n    return 0\n")
    res = run(code)
    assert res.score == 0.0 and len(res.stdout) < 3000 and "truncated" in res.stdout


def test_socket_is_refused():
    res = run("import socket\ndef add(a, b):\n    socket.socket().connect(('127.0.0.1', 9))\n    return a + b\n")
    assert res.score == 0.0 and ("socket" in res.message or "unreachable" in res.message)


def test_batch_runs_in_parallel():
    jobs = [("def add(a, b):\n    while True:\n        pass\n", "add", ADD_TESTS)] * 16
    t0 = time.monotonic()
    results = run_batch(jobs, timeout=1, workers=4)
    took = time.monotonic() - t0
    assert all(r.error == "timeout" for r in results)
    assert took < 16 * 1 * 0.75, f"16 one-second timeouts took {took:.1f} s"
