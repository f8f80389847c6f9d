"""Run untrusted, model-generated Python against unit tests, in layers.

A policy trained with a code-execution reward *will* write code that loops forever, allocates all
memory, forks, deletes files, opens sockets, prints gigabytes, calls ``os._exit`` before the tests
run, returns objects whose ``__eq__`` says yes to everything, or reads secrets from the environment.
None of that is malice; it is optimisation pressure. This module runs such code and always comes
back, quickly, with a small :class:`ExecutionResult`.

No single trick is a sandbox, so we stack cheap ones. Each layer says what it does **not** stop.

1. **A separate process per execution.** The candidate runs in a fresh ``python -I -S -B`` child
   (isolated mode: no ``PYTHON*`` variables, no user site, no script directory on ``sys.path``).
   We never ``exec`` model output in the trainer's process, and we do not even ``compile`` it here.
   *Does not stop*: anything the child is allowed to do by the OS; the layers below limit that.

2. **A wall-clock limit enforced from outside.** The parent waits on the child's pipes with a
   deadline and then SIGKILLs the child's whole process group (the child starts in a new session),
   then sweeps ``/proc`` for everything the run left behind: as root, every process owned by the
   run's private uid (layer 4), which also finds daemons that called ``setsid`` or double-forked;
   otherwise every process in the run's session or process group, every descendant of the child
   (the child is a "child subreaper", so orphans stay below it) and every process whose
   environment carries the run's token. No cgroups needed.
   *Does not stop*: a process that escapes all four criteria without root (a daemon that is
   re-parented to init *and* clears its environment *and* changes session) when the OS layers
   are unavailable; it also cannot undo side effects that happened before the deadline.

3. **Resource limits (``setrlimit``).** ``RLIMIT_CPU`` (CPU seconds), ``RLIMIT_AS`` (address space,
   so ``bytearray(8 GB)`` raises ``MemoryError``), ``RLIMIT_FSIZE`` (largest file), ``RLIMIT_NOFILE``,
   ``RLIMIT_CORE`` = 0, and ``RLIMIT_NPROC`` = 1 when a private uid is used: the child cannot
   start a single thread or process. Output is read in chunks and only the first few KB are kept,
   so printing gigabytes costs the parent no memory.
   *Does not stop*: disk filling with many files below the size limit inside the working dir
   (bounded by the time limit), memory that is mapped but not counted by ``RLIMIT_AS``, or fork
   bombs when we are not root (``RLIMIT_NPROC`` counts all processes of a uid, so it is only
   meaningful for a uid used by nothing else).

4. **Privilege drop (root only).** When the trainer runs as root (Colab, containers), the child
   prepares itself as root, then switches to a *private* unused uid (group ``nogroup``/65534),
   with no supplementary groups, before any candidate code runs. The kernel then refuses to
   delete or modify root's files, read ``/etc/shadow`` or ``0600`` files, or signal the trainer.
   A private uid (rather than the shared ``nobody``) gives three things ``nobody`` cannot:
   ``RLIMIT_NPROC`` = 1 counts only this run, "kill every process of this uid" kills exactly this
   run's leftovers, and parallel runs cannot signal each other. (So the child is not literally
   ``nobody``: it is a nobody of its own.) ``PR_SET_NO_NEW_PRIVS`` stops
   set-uid binaries from giving privileges back. Files the uid left in world-writable directories
   (``/tmp``, ``/var/tmp``, ``/dev/shm``) are deleted afterwards.
   *Does not stop*: reading world-readable files (``/etc/passwd``, world-readable project files),
   writing to world-writable places before the sweep runs, kernel exploits.

5. **OS isolation when available.** If ``unshare --net`` works (root, or unprivileged user
   namespaces), the child gets its own, empty network namespace: no interface but a downed
   loopback, so not even ``127.0.0.1`` is reachable. Without root we also ask for a PID namespace
   (``--pid --fork --kill-child``): when the harness dies, the kernel kills every process in it,
   which closes the cleanup gap of layer 2. We do not use bubblewrap/nsjail/containers, to stay
   dependency-free; use them (or a VM) if you need a real boundary.
   *Does not stop*: anything not network-related; where ``unshare`` is missing or refused, only
   layer 6 stops sockets.

6. **In-process guards (PEP 578 audit hooks).** Before the candidate runs, the harness installs an
   audit hook that refuses sockets, ``subprocess``/``os.system``/``fork``/``exec``/``spawn``,
   ``os.kill``, ``ctypes``, ``gc.get_objects``/``get_referrers``, writes anywhere except the
   working directory (after resolving symlinks) and reads outside the working directory and the
   standard library. The environment is replaced by a minimal one (``PATH``, ``HOME`` and
   ``TMPDIR`` pointing at a fresh temporary working directory that is deleted afterwards), so
   secrets in the trainer's environment are simply not there.
   *Does not stop*: anything implemented in C without an audit event (e.g. ``os.mkfifo``), or a
   determined attack on the interpreter itself. Audit hooks are a tripwire, not a security
   boundary; the OS layers above are what hold when they are bypassed.

7. **A result channel the candidate cannot usefully forge.** The harness reports over a pipe that
   is separate from stdout, as one JSON message per line, and reports only *plain values*: a result
   is converted to JSON only when its type is exactly ``int``/``float``/``str``/``bool``/``None``/
   ``list``/``tuple``/``dict`` (recursively), otherwise the test fails with "returned a X object".
   The *expected* values never enter the child: the parent compares by value, so an object whose
   ``__eq__`` always says ``True`` gains nothing, and ``os._exit(0)`` before the tests just leaves
   the report incomplete (score 0, with a clear message). Printing fake results on stdout does
   nothing.
   *Does not stop*: candidate code that finds the pipe (it shares the process) and writes a report
   with values it computed or hard-coded itself. That is no worse than ``return 3``: it still has
   to know the right answers. Nor does it stop tests whose arguments reveal the answer.

Public API: :func:`run_tests` (one program, one list of tests) and :func:`run_batch` (many, in
parallel over a bounded thread pool, so 16 infinite loops cost about four timeouts, not sixteen).
The same file is also the child's harness: the parent runs ``python -I -S -B sandbox.py --child``.
This module uses only the standard library.
"""
from __future__ import annotations

import json
import math
import os
import random
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

__all__ = ["ExecutionResult", "run_tests", "run_batch", "DEFAULT_TIMEOUT", "DEFAULT_MEMORY_MB"]

DEFAULT_TIMEOUT = 4.0  # wall-clock seconds for loading the code and running all of its tests
DEFAULT_MEMORY_MB = 512  # address-space limit of the child
STARTUP_TIMEOUT = 15.0  # generous: interpreter start-up on a busy 2-core machine is not the candidate's fault
MAX_STDOUT_CHARS = 2000  # how much of the candidate's output we keep (the rest is read and dropped)
MAX_CHANNEL_BYTES = 4_000_000  # a harness report bigger than this means someone is writing into the channel
MAX_VALUE_CHARS = 1_000_000  # a single returned value larger than this (as JSON) is not compared
NOGROUP_GID = 65534
CANDIDATE_FILENAME = "<candidate>"
_UID_BASE, _UID_SPAN = 1_900_000_000, 1 << 24  # private uids, far from real users and subuid ranges


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------
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
# Parent side: small helpers
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


def _normalise_tests(tests) -> list[tuple[list, object]]:
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


# ----------------------------------------------------------------------------------------------
# Parent side: isolation probes, private uids, cleanup
# ----------------------------------------------------------------------------------------------
_probe_lock = threading.Lock()
_prefix_cache: list[str] | None = None
_warned: set[str] = set()


def _warn_once(key: str, text: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(text, RuntimeWarning, stacklevel=3)


def _isolation_prefix() -> list[str]:
    """The ``unshare`` command line that isolates the child here (layer 5), or ``[]``.

    Root: a new network namespace. Not root: a user namespace with a network namespace and, if
    allowed, a PID namespace. Probed once per process.
    """
    global _prefix_cache
    with _probe_lock:
        if _prefix_cache is None:
            _prefix_cache = []
            unshare = shutil.which("unshare") or ("/usr/bin/unshare" if os.path.exists("/usr/bin/unshare") else None)
            if unshare and sys.platform.startswith("linux"):
                if os.geteuid() == 0:
                    candidates = [[unshare, "--net"]]  # root: the private uid already finds every process
                else:
                    # Not root: a user namespace makes the rest possible, and a PID namespace means
                    # that when the harness dies, the kernel kills everything it started.
                    userns = [unshare, "--user", "--map-root-user", "--net"]
                    candidates = [userns + ["--pid", "--fork", "--kill-child"], userns]
                for prefix in candidates:
                    try:
                        ok = subprocess.run(prefix + ["true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, timeout=10, env={"PATH": "/usr/bin:/bin"}).returncode == 0
                    except (OSError, subprocess.SubprocessError):
                        ok = False
                    if ok:
                        _prefix_cache = prefix
                        break
        return list(_prefix_cache)


def _proc_entries():
    """Yield ``(pid, state, ppid, pgid, sid, uids)`` for every process we can see in ``/proc``."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            rest = stat[stat.rfind(")") + 2:].split()
            uids: tuple = ()
            with open(f"/proc/{name}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"Uid:"):
                        uids = tuple(int(x) for x in line.split()[1:4])
                        break
            yield int(name), rest[0], int(rest[1]), int(rest[2]), int(rest[3]), uids
        except (OSError, ValueError, IndexError):
            continue


def _environ_has(pid: int, token: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return token in f.read()
    except OSError:
        return False


def _uid_in_use(uid: int) -> bool:
    try:
        import pwd

        pwd.getpwuid(uid)
        return True
    except (KeyError, ImportError):
        pass
    return any(uid in e[5] for e in _proc_entries())


def _pick_private_uid() -> int:
    """An unused uid for this run only (see layer 4 in the module docstring)."""
    rng = random.SystemRandom()
    for _ in range(20):
        uid = _UID_BASE + rng.randrange(_UID_SPAN)
        if not _uid_in_use(uid):
            return uid
    return _UID_BASE + rng.randrange(_UID_SPAN)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_everything(child_pid: int, uid: int | None, token: bytes) -> None:
    """Kill the child's process group and everything else this run started (layer 2).

    Repeats until a sweep finds nothing, because a process may fork between two sweeps. Killed
    processes that are zombies are skipped (they are already dead, only waiting to be reaped).
    """
    try:
        os.killpg(child_pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    me = os.getpid()
    for _ in range(50):
        entries = [e for e in _proc_entries() if e[0] != me]
        victims = set()
        if uid is not None:
            # A private uid is used by nothing else: every process with it belongs to this run,
            # whatever session or parent it has by now.
            victims = {pid for pid, state, _pp, _pg, _sid, uids in entries if uid in uids and state not in "ZX"}
        else:
            children = {}
            for pid, state, ppid, pgid, sid, _u in entries:
                children.setdefault(ppid, []).append(pid)
            stack, tree = [child_pid], set()
            while stack:  # descendants of the child (the child is a subreaper, so orphans stay below it)
                p = stack.pop()
                if p not in tree:
                    tree.add(p)
                    stack.extend(children.get(p, []))
            for pid, state, ppid, pgid, sid, _u in entries:
                if state in "ZX":
                    continue
                if pid in tree or sid == child_pid or pgid == child_pid or _environ_has(pid, token):
                    victims.add(pid)
        if not victims:
            return
        for pid in victims:
            _kill(pid)
        time.sleep(0.01)


def _sweep_world_writable(uid: int) -> None:
    """Delete what a private uid left in world-writable directories (it cannot write elsewhere)."""
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass


def _remove_tree(path: str) -> None:
    def fix_and_retry(func, p, _exc):  # the candidate may have chmod-ed things to 000
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=fix_and_retry)


# ----------------------------------------------------------------------------------------------
# Parent side: one execution
# ----------------------------------------------------------------------------------------------
class _Report:
    """The harness's messages, checked against the protocol as they arrive."""

    def __init__(self, total: int):
        self.total = total
        self.ready = False
        self.running: int | None = None  # index of the test the harness said it started
        self.results: list[dict] = []
        self.load_error: dict | None = None
        self.missing: str | None = None
        self.done = False
        self.violation: str | None = None
        self._buffer = b""
        self._bytes = 0

    def feed(self, data: bytes) -> None:
        self._bytes += len(data)
        if self._bytes > MAX_CHANNEL_BYTES:
            self.violation = "too much data on the result channel"
            return
        self._buffer += data
        while b"\n" in self._buffer and self.violation is None:
            line, self._buffer = self._buffer.split(b"\n", 1)
            try:
                msg = json.loads(line)
                self._handle(msg if isinstance(msg, dict) else {})
            except ValueError:
                self.violation = "unreadable message on the result channel"

    def _handle(self, msg: dict) -> None:
        ev = msg.get("ev")
        if self.done:
            self.violation = "message after the end of the report"
        elif ev == "ready" and not self.ready:
            self.ready = True
        elif not self.ready:
            self.violation = "message before the harness was ready"
        elif ev == "start" and self.running is None and msg.get("i") == len(self.results) < self.total:
            self.running = msg["i"]
        elif ev == "result" and self.running is not None and msg.get("i") == self.running:
            self.results.append(msg)
            self.running = None
        elif ev == "load_error" and not self.results and self.running is None:
            self.load_error = msg
        elif ev == "missing" and not self.results and self.running is None:
            self.missing = str(msg.get("msg", "function not found"))
        elif ev == "done" and self.running is None:
            complete = len(self.results) == self.total or self.load_error is not None or self.missing is not None
            if complete:
                self.done = True
            else:
                self.violation = "the report ended early"
        else:
            self.violation = f"unexpected message {str(ev)[:30]!r}"


def run_tests(code: str, entry_point: str, tests, *, timeout: float = DEFAULT_TIMEOUT,
              memory_mb: int = DEFAULT_MEMORY_MB, isolate_network: bool = True) -> ExecutionResult:
    """Run ``code`` in a fresh sandboxed process and call ``entry_point(*args)`` for each test.

    ``tests`` is a list of ``{"args": [...], "expected": ...}`` (or that list as a JSON string).
    ``timeout`` covers loading the code *and* running all tests. Never raises for anything the
    candidate does; problems of the sandbox itself come back with ``error="sandbox"``.
    """
    t0 = time.monotonic()
    cases = _normalise_tests(tests)
    try:
        return _run(str(code), str(entry_point), cases, float(timeout), int(memory_mb), isolate_network, t0)
    except Exception as e:  # noqa: BLE001 - a sandbox failure must not crash training
        _warn_once("sandbox-exception", f"sdpo_lite.sandbox failed: {type(e).__name__}: {e}")
        return ExecutionResult(0, len(cases), [], "sandbox", f"Sandbox error: {type(e).__name__}",
                               "", time.monotonic() - t0)


def _run(code, entry_point, cases, timeout, memory_mb, isolate_network, t0) -> ExecutionResult:
    total = len(cases)
    uid = _pick_private_uid() if os.geteuid() == 0 else None
    token = f"sdpo-sandbox-{os.getpid()}-{random.SystemRandom().getrandbits(64):016x}"
    base = tempfile.mkdtemp(prefix="sdpo_sandbox_")
    work = os.path.join(base, "work")
    os.mkdir(work, 0o700)
    if uid is not None:
        os.chmod(base, 0o711)  # the private uid may pass through base, but not list or read it
        os.chown(work, uid, NOGROUP_GID)
    payload_path = os.path.join(base, "job.json")
    job = {
        "code": code,
        "entry_point": entry_point,
        # Arguments only: the expected values never enter the child (layer 7).
        "args": [json.dumps(args) for args, _ in cases],
        "timeout": timeout,
        "memory_mb": memory_mb,
        "uid": uid,
        "gid": NOGROUP_GID if uid is not None else None,
        "workdir": work,
    }
    fd = os.open(payload_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(job, f)

    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8",
           "LC_ALL": "C.UTF-8", "SDPO_SANDBOX_TOKEN": token}
    prefix = _isolation_prefix() if isolate_network else []
    cmd = prefix + [sys.executable, "-I", "-S", "-B", "-X", "utf8", os.path.abspath(__file__),
                    "--sdpo-sandbox-child", payload_path]
    chan_r, chan_w = os.pipe()
    report = _Report(total)
    stdout_keep, stdout_total = bytearray(), 0
    timed_out = False
    proc = None
    try:
        cmd.append(str(chan_w))
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                pass_fds=(chan_w,), cwd=work, env=env, start_new_session=True, close_fds=True)
        os.close(chan_w)
        chan_w = -1
        out_fd = proc.stdout.fileno()
        os.set_blocking(out_fd, False)
        os.set_blocking(chan_r, False)
        sel = selectors.DefaultSelector()
        sel.register(out_fd, selectors.EVENT_READ, "out")
        sel.register(chan_r, selectors.EVENT_READ, "chan")
        open_fds = 2
        ready_at = None
        exited_at = None
        while True:
            now = time.monotonic()
            if report.ready and ready_at is None:
                ready_at = now
            limit = (ready_at + timeout) if ready_at is not None else (t0 + STARTUP_TIMEOUT)
            if report.done or report.violation:
                break
            if now >= limit:
                timed_out = True
                break
            if proc.poll() is not None:
                # The child is gone; take what is still in the pipes, then stop (a grandchild
                # may hold the pipes open forever, so we do not wait for end-of-file).
                if exited_at is None:
                    exited_at = now
                elif now - exited_at > 0.2 or open_fds == 0:
                    break
            elif open_fds == 0:
                time.sleep(0.01)
                continue
            for key, _ in sel.select(timeout=min(0.05, max(0.0, limit - now))):
                try:
                    data = os.read(key.fd, 1 << 16)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(key.fd)
                    open_fds -= 1
                elif key.data == "chan":
                    report.feed(data)
                else:
                    stdout_total += len(data)
                    if len(stdout_keep) < 4 * MAX_STDOUT_CHARS:
                        stdout_keep += data[: 4 * MAX_STDOUT_CHARS - len(stdout_keep)]
        returncode = proc.poll()
        sel.close()
    finally:
        if proc is not None:
            _kill_everything(proc.pid, uid, token.encode())
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            if proc.stdout:
                proc.stdout.close()
        for fd_ in (chan_r, chan_w):
            if fd_ >= 0:
                try:
                    os.close(fd_)
                except OSError:
                    pass
        _remove_tree(base)
        if uid is not None:
            _sweep_world_writable(uid)

    stdout = stdout_keep.decode("utf-8", errors="replace")
    if stdout_total > len(stdout_keep) or len(stdout) > MAX_STDOUT_CHARS:
        stdout = stdout[:MAX_STDOUT_CHARS] + f"\n... [output truncated, {stdout_total} bytes in total]"
    result = _judge(code, entry_point, cases, report, timed_out, returncode, timeout, memory_mb)
    result.stdout = stdout
    result.duration = time.monotonic() - t0
    if result.error == "sandbox":
        _warn_once("sandbox-start", "sdpo_lite.sandbox: the harness did not start; every completion will score 0. "
                   f"Child output: {stdout[:500]!r}")
    return result


def _judge(code, entry_point, cases, report: _Report, timed_out, returncode, timeout, memory_mb) -> ExecutionResult:
    """Turn the harness report into a score and one short, specific message."""
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


def run_batch(jobs, *, timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB,
              workers: int | None = None, isolate_network: bool = True) -> list[ExecutionResult]:
    """Run many ``(code, entry_point, tests)`` jobs (tuples or dicts) in parallel; results in order.

    Each job is its own process; a thread pool bounds how many run at once (default
    ``min(4, cpu count)``), so a batch of timeouts costs about ``len(jobs) / workers`` timeouts.
    """
    jobs = list(jobs)
    if not jobs:
        return []
    workers = workers or min(4, os.cpu_count() or 1)

    def one(job):
        if isinstance(job, dict):
            return run_tests(job["code"], job["entry_point"], job["tests"], timeout=timeout,
                             memory_mb=memory_mb, isolate_network=isolate_network)
        code, entry_point, tests = job
        return run_tests(code, entry_point, tests, timeout=timeout, memory_mb=memory_mb,
                         isolate_network=isolate_network)

    if len(jobs) == 1 or workers == 1:
        return [one(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="sdpo-sandbox") as pool:
        return list(pool.map(one, jobs))


# ----------------------------------------------------------------------------------------------
# Child side: the harness. Everything below runs in the sandbox process, *before* and *around*
# the candidate's code. It is written defensively: the candidate shares this interpreter.
# ----------------------------------------------------------------------------------------------
# Modules the candidate may want. They are imported before the privilege drop because the
# interpreter's files may be unreadable for the private uid (e.g. a pyenv under /root, mode 0700).
_PRELOAD = ("math", "cmath", "re", "string", "collections", "collections.abc", "itertools", "functools",
            "operator", "heapq", "bisect", "copy", "typing", "dataclasses", "enum", "json", "random",
            "statistics", "fractions", "decimal", "datetime", "textwrap", "unicodedata", "array", "struct",
            "numbers", "time", "calendar", "contextlib", "types", "pathlib", "socket", "subprocess",
            "signal", "threading", "queue", "hashlib", "base64", "zlib", "pprint", "io", "ast", "inspect",
            "traceback", "warnings", "ctypes", "errno", "tempfile", "shutil", "glob", "fnmatch", "difflib",
            "secrets", "locale", "weakref", "keyword", "multiprocessing", "concurrent.futures", "csv",
            "encodings.idna", "encodings.ascii", "encodings.latin_1", "encodings.utf_16", "encodings.utf_32",
            "encodings.cp1252", "encodings.unicode_escape", "encodings.raw_unicode_escape")

_BLOCKED_EVENT_PREFIXES = ("socket.", "ctypes.", "subprocess.", "os.system", "os.exec", "os.spawn",
                           "os.posix_spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg", "os.startfile",
                           "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames",
                           "webbrowser.", "winreg.", "sqlite3.")
# event -> indexes of the arguments that are paths the event will create, change or delete
_WRITE_EVENTS = {"os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.chmod": (0,), "os.chown": (0,),
                 "os.utime": (0,), "os.truncate": (0,), "os.rename": (0, 1), "os.link": (0, 1),
                 "os.symlink": (1,), "os.setxattr": (0,), "os.removexattr": (0,), "os.chflags": (0,),
                 "os.lchflags": (0,), "shutil.rmtree": (0,), "shutil.copyfile": (1,), "shutil.copymode": (1,),
                 "shutil.copystat": (1,), "shutil.copytree": (1,), "shutil.move": (0, 1), "shutil.chown": (0,),
                 "shutil.make_archive": (0,), "shutil.unpack_archive": (1,)}
_READ_EVENTS = {"os.listdir": (0,), "os.scandir": (0,), "glob.glob": (0,)}


def _child_set_limits(job) -> None:
    """Layer 3: resource limits, set before anything of the candidate runs."""
    cpu = int(math.ceil(job["timeout"])) + 1
    mem = int(job["memory_mb"]) * 1024 * 1024
    limits = [(resource.RLIMIT_CPU, (cpu, cpu + 1)), (resource.RLIMIT_AS, (mem, mem)),
              (resource.RLIMIT_FSIZE, (16 * 1024 * 1024, 16 * 1024 * 1024)), (resource.RLIMIT_CORE, (0, 0)),
              (resource.RLIMIT_NOFILE, (64, 64))]
    for which, value in limits:
        try:
            resource.setrlimit(which, value)
        except (ValueError, OSError):
            pass


def _child_prctl(job) -> None:
    """No new privileges through set-uid binaries; die with the parent; keep orphans below us."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG (after setuid, which clears it)
        if job.get("uid") is None:
            libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans are re-parented to us, not init
    except Exception:  # noqa: BLE001 - best effort; the other layers still hold
        pass


def _child_drop_privileges(job) -> None:
    """Layer 4: become the run's private uid. Fails closed: if it does not work, nothing runs."""
    uid, gid = job.get("uid"), job.get("gid")
    if uid is None:
        return
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise SystemExit("sandbox: privilege drop failed")
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise SystemExit("sandbox: privilege drop is reversible")
    resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))  # this uid runs nothing else: no fork, no threads


def _child_install_audit_hook(workdir: str) -> None:
    """Layer 6: refuse dangerous operations from Python code (see the module docstring)."""
    import pathlib

    realpath, fsdecode, sep = os.path.realpath, os.fsdecode, os.sep
    work = realpath(workdir)
    read_roots = tuple(sorted({realpath(p) for p in sys.path if p and os.path.exists(p)}
                              | {realpath(os.path.dirname(os.__file__))}))
    devices = {"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"}
    path_types = (pathlib.PosixPath, pathlib.PurePosixPath)
    write_bits = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    blocked, write_events, read_events = _BLOCKED_EVENT_PREFIXES, dict(_WRITE_EVENTS), dict(_READ_EVENTS)
    startswith = str.startswith

    def check(path, writing: bool) -> None:
        if path is None or type(path) is int:  # None: the current dir; int: an already opened fd
            return
        if type(path) in path_types:  # exact pathlib types only: their __fspath__ cannot be overridden
            path = str(path)
        elif type(path) is bytes:
            path = fsdecode(path)
        elif type(path) is not str:
            raise PermissionError("sandbox: paths must be str, bytes or pathlib.Path")
        real = realpath(path)
        if real == work or startswith(real, work + sep) or real in devices:
            return
        if not writing and any(real == r or startswith(real, r + sep) for r in read_roots):
            return
        action = "writing" if writing else "reading"
        raise PermissionError(f"sandbox: {action} {path[:80]!r} is not allowed (outside the working directory)")

    def hook(event: str, args: tuple) -> None:
        if startswith(event, blocked):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            if type(mode) is str:
                writing = any(c in mode for c in "wax+")
            elif type(flags) is int:
                writing = bool(flags & write_bits)
            else:
                writing = True
            check(path, writing)
        elif event in write_events:
            for i in write_events[event]:
                if i < len(args):
                    check(args[i], True)
        elif event in read_events:
            for i in read_events[event]:
                if i < len(args):
                    check(args[i], False)

    sys.addaudithook(hook)


class _NotPlain(Exception):
    pass


def _plain(value, depth=0, budget=None):
    """Layer 7: a JSON-able copy of ``value`` if it is made only of exact builtin types.

    Uses ``type(x) is ...`` checks, never ``isinstance``/``==``/``repr`` on candidate objects, so
    no candidate method runs here. Tuples become lists; dict keys must be str/int/float/bool/None.
    """
    if budget is None:
        budget = [100_000]
    budget[0] -= 1
    if budget[0] < 0:
        raise _NotPlain("returned a value too large to compare")
    if depth > 100:
        raise _NotPlain("returned a value nested too deeply to compare")
    t = type(value)
    if value is None or t is bool or t is int or t is float or t is str:
        return value
    if t is list or t is tuple:
        return [_plain(v, depth + 1, budget) for v in value]
    if t is dict:
        out = {}
        for k, v in list(value.items()):
            tk = type(k)
            if tk is str:
                key = k
            elif k is None or tk in (bool, int, float):
                key = json.dumps(k)
            else:
                raise _NotPlain(f"returned a dict with {_type_name(k)} keys")
            out[key] = _plain(v, depth + 1, budget)
        return out
    name = _type_name(value)
    article = "an" if name[:1].lower() in "aeiou" else "a"
    raise _NotPlain(f"returned {article} {name} object, not a plain value")


def _type_name(value) -> str:
    name = type(value).__name__  # type() cannot be overridden; __name__ of a class is always a str
    return name[:60] if type(name) is str else "?"


def _describe_exception(exc: BaseException) -> dict:
    """Type, message and the candidate's line number, without trusting the exception object."""
    try:
        msg = exc.msg if isinstance(exc, SyntaxError) and type(exc.msg) is str else str(exc)
        msg = msg[:300] if type(msg) is str else "<unprintable message>"
    except BaseException:  # noqa: BLE001 - __str__ is candidate code
        msg = "<unprintable message>"
    line = None
    try:
        if isinstance(exc, SyntaxError) and exc.filename == CANDIDATE_FILENAME and type(exc.lineno) is int:
            line = exc.lineno
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == CANDIDATE_FILENAME:
                line = tb.tb_lineno
            tb = tb.tb_next
    except BaseException:  # noqa: BLE001
        pass
    return {"type": _type_name(exc), "msg": msg, "line": line}


def _child_main(payload_path: str, chan_fd: str) -> None:
    """The harness: prepare the process, run the candidate, report plain values, wait to be killed."""
    chan = int(chan_fd)
    with open(payload_path) as f:
        job = json.load(f)
    os.set_inheritable(chan, False)  # exec-ed programs (if any get that far) do not inherit it
    dumps, write = json.dumps, os.write
    memory_note = b'{"ev": "result", "i": %d, "error": {"type": "MemoryError", "msg": "", "line": null}}\n'

    def send(msg: dict) -> None:
        data = (dumps(msg) + "\n").encode()
        while data:
            data = data[write(chan, data):]

    _child_set_limits(job)
    for name in _PRELOAD:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a missing optional module is fine
            pass
    _child_drop_privileges(job)
    _child_prctl(job)
    os.chdir(job["workdir"])
    os.umask(0o077)
    _child_install_audit_hook(job["workdir"])
    sys.argv = ["candidate"]
    arg_lists = list(job["args"])
    code, entry_point = job["code"], job["entry_point"]
    del job
    send({"ev": "ready"})

    import builtins

    namespace = {"__name__": "candidate", "__builtins__": builtins}  # not __main__: skip demo code
    try:
        compiled = compile(code, CANDIDATE_FILENAME, "exec")
    except BaseException as e:  # noqa: BLE001 - SyntaxError, ValueError (null bytes), MemoryError, ...
        send({"ev": "load_error", "kind": "syntax" if isinstance(e, SyntaxError) else "load", **_describe_exception(e)})
        send({"ev": "done"})
        _child_wait()
    try:
        exec(compiled, namespace)
    except BaseException as e:  # noqa: BLE001 - includes SystemExit and KeyboardInterrupt
        send({"ev": "load_error", "kind": "load", **_describe_exception(e)})
        send({"ev": "done"})
        _child_wait()
    fn = namespace.get(entry_point) if type(namespace) is dict else None
    if fn is None or not callable(fn):
        what = "was not defined" if fn is None else f"is not a function (it is a {_type_name(fn)})"
        send({"ev": "missing", "msg": f"`{entry_point}` {what}."})
        send({"ev": "done"})
        _child_wait()
    for i, args_json in enumerate(arg_lists):
        args = json.loads(args_json)  # a fresh copy per test: mutating arguments cannot leak across tests
        send({"ev": "start", "i": i})
        try:
            value = fn(*args)
        except MemoryError:
            value = None
            write(chan, memory_note % i)  # pre-built bytes: reporting must not need memory
            continue
        except BaseException as e:  # noqa: BLE001
            send({"ev": "result", "i": i, "error": _describe_exception(e)})
            continue
        try:
            text = dumps(_plain(value))
            if len(text) > MAX_VALUE_CHARS:
                raise _NotPlain("returned a value too large to compare")
            data = ('{"ev": "result", "i": %d, "value": %s}\n' % (i, text)).encode()
            while data:
                data = data[write(chan, data):]
        except _NotPlain as e:
            send({"ev": "result", "i": i, "bad": str(e.args[0])})
        except (ValueError, RecursionError, MemoryError, OverflowError):
            send({"ev": "result", "i": i, "bad": "returned a value that cannot be compared"})
        del value
    send({"ev": "done"})
    _child_wait()


def _child_wait() -> None:
    """Stay alive until the parent kills us, so that its sweep still sees everything we started."""
    while True:
        time.sleep(60)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--sdpo-sandbox-child":
    _child_main(sys.argv[2], sys.argv[3])
