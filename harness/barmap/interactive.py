"""Connect the user's terminal to the guest's serial console (``barmap run``/``debug``)."""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import tty

from barmap.machine import Machine

ESCAPE = b"\x1d"  # Ctrl-]


def attach(vm: Machine, banner: str = "") -> None:
    """Pass bytes both ways until Ctrl-] or the VM ends; the console log keeps everything."""
    console = vm.console
    rfd = vm.drain.read_fd
    out = sys.stdout.buffer
    if banner:
        out.write(banner.encode() + b"\r\n")
    # what pexpect already read past the boot marker (the first prompt)
    pending = console.buffered()
    if pending:
        out.write(pending.encode())
    out.flush()
    stdin = sys.stdin.fileno()
    is_tty = os.isatty(stdin)
    saved = termios.tcgetattr(stdin) if is_tty else None
    try:
        if is_tty:
            tty.setraw(stdin)
        while vm.is_running():
            ready, _, _ = select.select([stdin, rfd], [], [], 0.2)
            if rfd in ready:
                data = os.read(rfd, 65536)
                if not data:
                    break
                out.write(data)
                out.flush()
            if stdin in ready:
                data = os.read(stdin, 1024)
                if not data or ESCAPE in data:
                    data = data.split(ESCAPE, 1)[0]
                    if data:
                        console.send(data)
                    break
                console.send(data)
    finally:
        if saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        out.write(b"\r\n")
        out.flush()
