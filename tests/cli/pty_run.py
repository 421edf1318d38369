#!/usr/bin/env python3
"""pty_run.py [--stdout-only] [--stdin TEXT] CMD...: runs CMD with stdout on a pseudo-terminal (and
stdin too unless --stdout-only) and copies what it wrote there to our stdout; stderr is passed on.
The CLI tests use it for what glmoe does only on a terminal."""
import os
import pty
import subprocess
import sys

args = sys.argv[1:]
stdout_only = args and args[0] == "--stdout-only"
if stdout_only:
    args = args[1:]
master, slave = pty.openpty()
p = subprocess.Popen(args, stdin=subprocess.DEVNULL if stdout_only else slave, stdout=slave)
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
