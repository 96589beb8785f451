"""``barmap env``: the exports a module build and tests of your own need."""

from __future__ import annotations

import argparse
from typing import Any

from barmap.build.artifacts import BOOTS
from barmap.build.paths import REPO_ROOT
from barmap.cli import options
from barmap.cli.options import SUITE_HELP


def cmd_env(args: argparse.Namespace) -> int:
    """The exports a build or test of your own needs, for eval in a shell."""
    import shlex

    from barmap.build.kbuild import kdir

    art = options.choice(args).artifacts()
    values = {
        "BARMAP_DIR": str(REPO_ROOT),
        "BARMAP_QEMU": str(art.qemu),
        "BARMAP_KERNEL": str(art.kernel),
        "BARMAP_INITRD": str(art.initrd),
        "BARMAP_KENV": str(art.kernel_env),
        "BARMAP_KDIR": str(kdir(art.kernel_env)),
    }
    for name, value in values.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("env", help="the exports your own module build and tests need")
    p.add_argument("--suite", help=SUITE_HELP)
    p.add_argument("--qemu", help=argparse.SUPPRESS)
    p.add_argument("--kernel", help=argparse.SUPPRESS)
    p.add_argument("--initrd", help=argparse.SUPPRESS)
    p.add_argument("--boot", choices=BOOTS, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_env)
