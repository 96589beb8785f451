"""``barmap run``: an interactive serial shell in the guest (Ctrl-] quits)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from barmap.cli import options
from barmap.cli.options import add_cli_vm_options, add_session_options
from barmap.config import MachineConfig
from barmap.debug import session as dbg
from barmap.guest import checks
from barmap.guest.machine import Machine


def session_name(args: argparse.Namespace, command: str) -> str:
    return args.name or f"{command}-{os.getpid()}"


def session_config(args: argparse.Namespace, **fields: object) -> MachineConfig:
    """A run or debug session's config: the HMP socket, the trace events asked for."""
    return options.config(args, hmp_socket=True, trace=tuple(args.trace or ()), **fields)


def attach_console(vm: Machine, name: str) -> None:
    """The serial console on this terminal until Ctrl-], the trace events beside it."""
    from barmap.debug.interactive import KEYS_HELP, attach

    trace = vm.config.trace
    traced = f"; trace events of {', '.join(trace)} shown" if trace else ""
    attach(
        vm,
        banner=f"barmap: serial console ({vm.accel}, booted in "
        f"{vm.boot_seconds:.1f} s); Ctrl-] quits; session {name} "
        f"(barmap monitor {name}){traced}; log {vm.console_log}\r\n{KEYS_HELP.rstrip()}",
        trace=vm.trace_log if trace else None,
    )


def cmd_run(args: argparse.Namespace) -> int:
    name = session_name(args, "run")
    log_dir = options.log_dir(args, "run")
    vm = Machine(session_config(args), log_dir=log_dir)
    try:
        vm.start(quiet_shell=False)
        dbg.register(vm, name, log_dir, "run")
        if args.load:
            vm.console.send(checks.insmod_command(vm) + "\n")
        attach_console(vm, name)
    finally:
        vm.shutdown()
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="an interactive serial shell in the guest (Ctrl-] quits)")
    add_cli_vm_options(p)
    add_session_options(p)
    p.add_argument("--load", action="store_true", help="insmod the barmap driver first")
    p.set_defaults(func=cmd_run)
