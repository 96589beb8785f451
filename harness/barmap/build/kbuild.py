"""Building a module of the user's own against the guest's kernel, as barmap.ko is built."""

from __future__ import annotations

import subprocess
from pathlib import Path

from barmap.build.paths import REPO_ROOT, read_env_file
from barmap.errors import ConfigError

GUEST_DRIVER = REPO_ROOT / "guest-driver"


def kdir(kernel_env: Path) -> Path:
    """The guest kernel's build tree (kernel.env's KDIR), for ``make -C KDIR M=...``."""
    if not kernel_env.is_file():
        raise ConfigError(f"no kernel.env at {kernel_env}: run `make kernel`")
    value = read_env_file(kernel_env).get("KDIR", "")
    if not value or not Path(value).is_dir():
        raise ConfigError(f"{kernel_env} names no kernel build tree (KDIR): run `make kernel`")
    return Path(value)


def build_module(src: Path, kernel_env: Path) -> list[Path]:
    """``make modules`` of the module source in ``src`` for the guest kernel of
    ``kernel_env`` (the compiler shims a Debian 13 kernel needs on a Debian 12 host
    included); the .ko files it made.  ConfigError with make's last words on failure."""
    src = Path(src).resolve()
    if not src.is_dir():
        raise ConfigError(f"module source {src} is no directory")
    proc = subprocess.run(
        ["make", "-s", "-C", str(GUEST_DRIVER), "external", f"EXT={src}",
         f"KERNEL={kernel_env}"],
        capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise ConfigError(f"building the module in {src} failed:\n" + "\n".join(tail))
    modules = sorted(src.glob("*.ko"))
    if not modules:
        raise ConfigError(f"building {src} made no .ko")
    return modules
