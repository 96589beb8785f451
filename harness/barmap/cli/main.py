"""The ``barmap`` command: the parser and the dispatch; each command is a module here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from barmap.cli import atlas, bench, build, debug, demo, doctor, env, monitor, run, ssh
from barmap.errors import BarmapError, MachineError

EPILOG = """\
examples:
  barmap demo                      boot, load the driver, check both mmap strategies
  barmap run --load                an interactive serial shell with the driver loaded
  barmap ssh -- cat /proc/iomem    boot with SSH and run one command (no command: a session)
  barmap debug --break barmap_mmap gdb stub and the driver's symbols (prints one gdb command)
  barmap monitor                   the QEMU monitor of a running run/debug session
  barmap doctor                    what is built, cached and usable here
"""


# in the order `barmap --help` lists them
COMMANDS = (build, demo, run, ssh, debug, monitor, bench, atlas, env, doctor)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="barmap",
        description="Emulated PCI device memory for testing how drivers map it into "
        "userspace (remap_pfn_range vs dma_mmap_coherent).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MachineError as exc:
        print(f"barmap: error: {exc.message}", file=sys.stderr)
        if exc.log_path:
            print(f"barmap: console log: {exc.log_path}", file=sys.stderr)
        elif exc.console_tail:
            print("barmap: console tail:\n" + exc.console_tail[-2000:], file=sys.stderr)
        return 1
    except BarmapError as exc:
        print(f"barmap: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("barmap: interrupted", file=sys.stderr)
        return 130
