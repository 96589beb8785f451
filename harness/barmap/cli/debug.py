"""``barmap debug``: like run, with gdb's stub, the driver's symbols and breakpoints."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from barmap.cli import options
from barmap.cli.options import add_cli_vm_options, add_session_options
from barmap.cli.run import attach_console, session_config, session_name
from barmap.debug import session as dbg
from barmap.guest.machine import Machine


def debug_options(args: argparse.Namespace, driver_ko: Path | None = None) -> dbg.DebugOptions:
    """The frozen options of the session (the library never sees the Namespace)."""
    return dbg.DebugOptions(
        gdb_port=args.gdb_port,
        breaks=tuple(args.breaks or ()),
        suite=args.suite,
        kernel_symbols=not args.no_kernel_symbols,
        driver_ko=args.driver_ko or driver_ko,
    )


def cmd_debug(args: argparse.Namespace) -> int:
    name = session_name(args, "debug")
    if args.tmux:
        return dbg.in_tmux(sys.argv[1:] if args.argv is None else args.argv, name)
    if args.symbols:
        from barmap.build.symbols import fetch

        fetch(args.suite)
    art = options.choice(args).artifacts()
    # the module the initramfs carries, built beside it (make image)
    opts = debug_options(args, art.initrd.parent / "barmap.ko")
    paused = not (args.load or opts.breaks)
    fields: dict[str, object] = {"gdb_port": opts.gdb_port}
    if paused:
        fields["boot_timeout"] = 24 * 3600.0
    log_dir = options.log_dir(args, "debug")
    vm = Machine(session_config(args, art=art, **fields), log_dir=log_dir)
    try:
        if paused:
            vm.start(paused=True)
            dbg.register(vm, name, log_dir, "debug")
            script = dbg.paused_script(opts, log_dir)
            print(_gdb_hint(script, opts.gdb_port, paused=True), file=sys.stderr)
            _announce(args, script)
            print(
                "barmap: the guest is stopped at its first instruction; `continue` in gdb "
                "(or press Enter here) to run it",
                file=sys.stderr,
            )
            if os.isatty(sys.stdin.fileno()):
                sys.stdin.readline()
            if vm.qmp.cmd("query-status")["status"] != "running":
                vm.qmp.cmd("cont")
            vm.wait_boot(quiet_shell=False)
        else:
            vm.start()
            dbg.register(vm, name, log_dir, "debug")
            script = dbg.prepare(vm, opts, log_dir, art.vmlinux)
            vm.console.send("stty echo\n")
            print(_gdb_hint(script, opts.gdb_port, paused=False, deferred=bool(opts.breaks)),
                  file=sys.stderr)  # fmt: skip
            _announce(args, script)
        attach_console(vm, name)
    finally:
        vm.shutdown()
    return 0


def _announce(args: argparse.Namespace, script: Path) -> None:
    """Tell a waiting tmux pane where the gdb script is (``--announce-script``)."""
    if args.announce_script:
        tmp = Path(args.announce_script).with_suffix(".tmp")
        tmp.write_text(str(script))
        tmp.replace(args.announce_script)


def _gdb_hint(script: Path, port: int, *, paused: bool, deferred: bool = False) -> str:
    """How to attach: one gdb command, and what the script does."""
    if paused:
        then = "the guest waits at its first instruction"
    elif deferred:
        then = "the driver is loaded once gdb is attached, and the script continues"
    else:
        then = "gdb stops the guest when it attaches; `continue` runs it"
    return (
        f"barmap: gdb stub on 127.0.0.1:{port} (the script: target remote 127.0.0.1:{port},"
        f" symbols, breakpoints); attach with:\n  {dbg.gdb_command(script)}\n"
        f"barmap: {then}"
    )


def register(sub: Any) -> None:
    p = sub.add_parser(
        "debug",
        help="like run, with gdb's stub, the driver's symbols and breakpoints (docs/debugging.md)",
    )
    add_cli_vm_options(p)
    add_session_options(p)
    p.add_argument(
        "--load",
        action="store_true",
        help="boot, insmod the driver and write a gdb script with its symbols (without "
        "--load or --break the guest stops at its first instruction)",
    )
    p.add_argument(
        "--break",
        dest="breaks",
        action="append",
        metavar="FUNC",
        help="a breakpoint (repeatable): the driver then loads once gdb is attached, so "
        "its init and probe can be stopped in too",
    )
    p.add_argument("--gdb-port", type=int, default=1234, help="gdb stub port (default 1234)")
    p.add_argument(
        "--symbols",
        action="store_true",
        help="fetch the kernel's debug symbols first (make symbols: ~860 MB once)",
    )
    p.add_argument(
        "--no-kernel-symbols",
        action="store_true",
        help="do not give gdb the kernel's symbols, even when they are here",
    )
    p.add_argument(
        "--driver-ko", type=Path, help="the .ko with debug info (default: the built one)"
    )
    p.add_argument(
        "--tmux", action="store_true", help="console, gdb and monitor in one tmux window"
    )
    p.add_argument("--announce-script", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_debug, argv=None)
