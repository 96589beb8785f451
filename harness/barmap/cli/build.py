"""``barmap build``: the make targets."""

from __future__ import annotations

import argparse
import subprocess
from typing import Any

from barmap.build.paths import REPO_ROOT

BUILD_TARGETS = ("all", "qemu", "kernel", "driver", "image")  # make targets of the same name


def cmd_build(args: argparse.Namespace) -> int:
    return subprocess.call(["make", "-C", str(REPO_ROOT), args.what])


def register(sub: Any) -> None:
    p = sub.add_parser("build", help="build QEMU, the kernel cache, the driver and the image")
    p.add_argument("what", nargs="?", default="all", choices=BUILD_TARGETS)
    p.set_defaults(func=cmd_build)
