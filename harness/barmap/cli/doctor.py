"""``barmap doctor``: what is built, cached and usable here."""

from __future__ import annotations

import argparse
import shutil
import socket
from pathlib import Path
from typing import Any

from barmap.build.artifacts import find_artifacts
from barmap.build.paths import cache_dir, firmware_file
from barmap.cli.options import SUITE_HELP
from barmap.cli.table import table


def cmd_doctor(args: argparse.Namespace) -> int:
    from barmap.qemu.accel import cached_probe

    art = find_artifacts(args.suite)
    rows: list[tuple[str, str, str]] = []

    def item(name: str, ok: bool, detail: str) -> None:
        rows.append((name, "ok" if ok else "MISSING", detail))

    item("QEMU build", art.qemu.is_file(), str(art.qemu))
    item("guest kernel", art.kernel.is_file(), f"{art.kernel_release or '?'} {art.kernel}")
    item("initramfs", art.initrd.is_file(), str(art.initrd))
    for tool in ("make", "gcc", "ninja", "busybox", "cpio", "gdb", "dropbear"):
        path = shutil.which(tool) or (
            f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else ""
        )
        item(tool, bool(path), path)
    for name in ("bios-256k.bin", "kvmvapic.bin"):
        found = firmware_file(name)
        item("firmware", found is not None, str(found or f"{name}: in none of the -L dirs"))
    if art.qemu.is_file() and art.kernel.is_file():
        probe = cached_probe(art.qemu, art.kernel, art.arch)
        rows.append(("KVM", "usable" if probe.usable else "unusable (TCG)", probe.reason))
    else:
        rows.append(("KVM", "unknown", "needs the QEMU build and kernel to probe"))
    rows.append(("cache", "ok", str(cache_dir())))
    for port, use in ((1234, "gdb stub (barmap debug)"),):
        with socket.socket() as s:
            free = s.connect_ex(("127.0.0.1", port)) != 0
        rows.append((f"port {port}", "free" if free else "IN USE", use))
    print(table(("what", "state", "detail"), rows))
    return 0 if all(r[1] != "MISSING" for r in rows[:3]) else 1


def register(sub: Any) -> None:
    p = sub.add_parser("doctor", help="what is installed, cached and usable")
    p.add_argument("--suite", help=SUITE_HELP)
    p.set_defaults(func=cmd_doctor)
