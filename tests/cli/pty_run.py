#!/usr/bin/env python3
"""pty_run.py [--stdout-only | --stderr-only] CMD...: runs CMD with stdout on a pseudo-terminal (and
stdin too unless --stdout-only; with --stderr-only, only stderr) and copies what it wrote there to our
stdout; the other streams are passed on.
The CLI tests use it for what glmoe does only on a terminal."""
import os
import pty
import subprocess
import sys

args = sys.argv[1:]
mode = args[0] if args and args[0] in ("--stdout-only", "--stderr-only") else ""
if mode:
    args = args[1:]
master, slave = pty.openpty()
if mode == "--stderr-only":
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
else:
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL if mode else slave, stdout=slave)
os.close(slave)
out = b""
while True:
    try:
        chunk = os.read(master, 4096)
    except OSError:  # EIO: the child closed the terminal
        break
    if not chunk:
        break
    out += chunk
sys.stdout.buffer.write(out)
sys.exit(p.wait(timeout=60))
