"""The child side of the sandbox: the harness that runs around the candidate's code, in its own process.

`sandbox.py` starts this file as a script, `python -I -S -B harness.py --sdpo-sandbox-child JOB.json FD` (isolated
mode: no PYTHON* variables, no user site, no script directory on sys.path), so it uses only the standard library
and imports nothing of ours. Before the candidate's code runs, the harness sets the resource limits, drops
privileges (when started as root), installs the audit hook and replaces the environment (layers 3, 4 and 6 in
`sandbox.py`); then it loads the code, calls the entry point once per test and reports each result as one JSON
line on the result channel FD (layer 7): plain values only, never the candidate's objects. It never sees the
expected values; the parent compares (`judge.py`).

Everything here is written defensively: the candidate shares this interpreter.
"""
from __future__ import annotations

import json
import math
import os
import resource
import signal
import sys
import time

CANDIDATE_FILENAME = "<candidate>"
MAX_VALUE_CHARS = 1_000_000  # a single returned value larger than this (as JSON) is not compared


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
            "encodings.cp1252", "encodings.unicode_escape", "encodings.raw_unicode_escape",
            "selectors")  # selectors: loaded when the harness was part of sandbox.py; kept loaded

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
