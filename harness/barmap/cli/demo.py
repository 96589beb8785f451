"""``barmap demo``: the seed question's story on one guest."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from barmap.cli import options
from barmap.cli.options import add_cli_vm_options
from barmap.cli.table import table
from barmap.guest import checks
from barmap.guest.machine import Machine


def cmd_demo(args: argparse.Namespace) -> int:
    """The seed question's story: every strategy works, then three ways to read nothing."""
    from barmap.runs import demo

    config = options.config(args)
    log_dir = options.log_dir(args, "demo")
    with Machine(config, log_dir=log_dir) as vm:
        print(
            f"barmap: guest up in {vm.boot_seconds:.1f} s ({vm.accel}); "
            f"console log {vm.console_log}",
            file=sys.stderr,
        )
        checks.load_module(vm)
        strategies = [r["row"] for r in checks.tool_tables(vm)[0] if r["driver"]]
        rows = demo.working(vm, strategies) + demo.failures(vm)
        vm.check_crash()
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2))
    else:
        print(
            table(
                ("case", "bytes checked", "mismatches", "reads", "barmap-why", "verdict"),
                [(r.case, r.bytes_checked, r.mismatches, r.reads, r.cause, r.verdict)
                 for r in rows],
            )
        )  # fmt: skip
    return 0 if rows and all(r.verdict == "PASS" for r in rows) else 1


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="boot, load the driver, check both mmap strategies")
    add_cli_vm_options(p)
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.set_defaults(func=cmd_demo)
