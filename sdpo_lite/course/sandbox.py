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
Three modules, one job each: this one controls the process (start, limits, deadline, cleanup, reading the
result channel); ``harness.py`` is the child (the parent runs ``python -I -S -B harness.py --sdpo-sandbox-child``);
``judge.py`` compares the results with the tests and words the feedback. Standard library only.
"""
from __future__ import annotations

import json
import os
import random
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

from sdpo_lite.course.judge import ExecutionResult, judge, normalise_tests

__all__ = ["ExecutionResult", "run_tests", "run_batch", "DEFAULT_TIMEOUT", "DEFAULT_MEMORY_MB"]

DEFAULT_TIMEOUT = 4.0  # wall-clock seconds for loading the code and running all of its tests
DEFAULT_MEMORY_MB = 512  # address-space limit of the child
STARTUP_TIMEOUT = 15.0  # generous: interpreter start-up on a busy 2-core machine is not the candidate's fault
MAX_STDOUT_CHARS = 2000  # how much of the candidate's output we keep (the rest is read and dropped)
MAX_CHANNEL_BYTES = 4_000_000  # a harness report bigger than this means someone is writing into the channel
NOGROUP_GID = 65534
HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "harness.py")  # the child, run as a script
_UID_BASE, _UID_SPAN = 1_900_000_000, 1 << 24  # private uids, far from real users and subuid ranges


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
class Report:
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
    cases = normalise_tests(tests)
    try:
        return _run(str(code), str(entry_point), cases, float(timeout), int(memory_mb), isolate_network, t0)
    except Exception as e:  # noqa: BLE001 - a sandbox failure must not crash training
        _warn_once("sandbox-exception", f"sdpo_lite.course.sandbox failed: {type(e).__name__}: {e}")
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
    cmd = prefix + [sys.executable, "-I", "-S", "-B", "-X", "utf8", HARNESS,
                    "--sdpo-sandbox-child", payload_path]
    chan_r, chan_w = os.pipe()
    report = Report(total)
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
    result = judge(code, entry_point, cases, report, timed_out, returncode, timeout, memory_mb)
    result.stdout = stdout
    result.duration = time.monotonic() - t0
    if result.error == "sandbox":
        _warn_once("sandbox-start", "sdpo_lite.course.sandbox: the harness did not start; every completion scores 0. "
                   f"Child output: {stdout[:500]!r}")
    return result


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
