"""``barmap bench``: boot, snapshot and bandwidth figures (JSON), measured."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from barmap.build.artifacts import find_artifacts
from barmap.cli import options
from barmap.cli.options import add_cli_vm_options
from barmap.errors import BarmapError


def cmd_bench(args: argparse.Namespace) -> int:
    """Boot phases per boot path, snapshot and bandwidth figures (JSON): measured, not asserted."""
    from barmap.runs.bench import boot_report, machine_report, quiet_config

    config = options.config(args)
    log_dir = options.log_dir(args, "bench")
    # each way this kernel can boot: x86's PVH vmlinux and bzImage; arm64's one Image
    x86 = config.arch == "x86_64"
    boots = [args.boot] if args.boot or args.kernel or not x86 else ["pvh", "bzimage"]
    configs = {}
    for boot in boots:
        try:
            art = find_artifacts(args.suite, args.qemu, args.kernel, args.initrd, boot,
                                 args.arch)  # fmt: skip
        except BarmapError as exc:
            print(f"barmap bench: no {boot} boot: {exc}", file=sys.stderr)
            continue
        configs[art.boot] = quiet_config(replace(config, kernel=art.kernel))
    result = {
        "qemu": str(config.qemu),
        "kernel": str(config.kernel),
        "boot": boot_report(configs, args.rounds, log_dir) if args.rounds > 0 else {},
        **machine_report(config, args.repeat, log_dir),
    }
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="boot, snapshot-restore and bandwidth figures (JSON)")
    add_cli_vm_options(p)
    p.add_argument("--json", type=Path, help="also write the JSON to this file")
    p.add_argument("--repeat", type=int, default=5, help="snapshot restores to time")
    p.add_argument("--rounds", type=int, default=5, help="boots per boot path (medians)")
    p.set_defaults(func=cmd_bench)
