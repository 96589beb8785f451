"""``barmap monitor``: the QEMU monitor (HMP) of a running session."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from barmap.cli.table import table


def cmd_monitor(args: argparse.Namespace) -> int:
    from barmap.qemu import hmp, sessions

    if args.list:
        rows = [(s.name, s.command, str(s.qemu_pid), str(s.gdb_port or "-"), s.log_dir)
                for s in sessions.sessions()]  # fmt: skip
        print(table(("session", "command", "qemu pid", "gdb port", "log"), rows))
        return 0
    session = sessions.find_session(args.name)
    if args.command:
        return hmp.run_commands(session.hmp_socket, args.command)
    print(f"barmap: QEMU monitor of {session.name}; Ctrl-D leaves", file=sys.stderr)
    return hmp.interactive(session.hmp_socket)


def register(sub: Any) -> None:
    p = sub.add_parser("monitor", help="the QEMU monitor (HMP) of a running run/debug session")
    p.add_argument("name", nargs="?", help="the session (default: the only one running)")
    p.add_argument(
        "-c", "--command", action="append", help="run this HMP command and exit (repeatable)"
    )
    p.add_argument("--list", action="store_true", help="list the running sessions")
    p.set_defaults(func=cmd_monitor)
