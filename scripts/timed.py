#!/usr/bin/env python3
"""Run a command, print its wall time, and pass its exit code on:  timed.py LABEL -- CMD ARGS..."""
import subprocess
import sys
import time

label, sep, *cmd = sys.argv[1:]
assert sep == "--" and cmd, "usage: timed.py LABEL -- CMD ARGS..."
t0 = time.perf_counter()
rc = subprocess.call(cmd)
print(f"[time] {label}: {time.perf_counter() - t0:.0f} s (exit {rc})", flush=True)
sys.exit(rc)
