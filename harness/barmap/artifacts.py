"""Where the built pieces are: QEMU binary, guest kernel, initramfs.

``make`` exports BARMAP_QEMU, BARMAP_KENV (the kernel.env written by
scripts/kernel.sh), BARMAP_KERNEL (a user's own kernel image) and
BARMAP_INITRD; without them the defaults follow the Makefile's layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from barmap.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SUITE = "bookworm"


def cache_dir() -> Path:
    return Path(os.environ.get("BARMAP_CACHE") or Path.home() / ".cache" / "barmap")


def read_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class Artifacts:
    qemu: Path
    kernel: Path
    initrd: Path
    kernel_release: str
    modules_dir: Path | None = None

    def check(self) -> None:
        """Raise ConfigError naming the first missing piece and the make target that builds it."""
        for path, what, target in (
            (self.qemu, "QEMU binary", "make qemu"),
            (self.kernel, "guest kernel", "make kernel"),
            (self.initrd, "initramfs", "make image"),
        ):
            if not path.is_file():
                raise ConfigError(f"{what} not found at {path}: run `{target}`")


def find_artifacts(
    suite: str | None = None,
    qemu: str | os.PathLike[str] | None = None,
    kernel: str | os.PathLike[str] | None = None,
    initrd: str | os.PathLike[str] | None = None,
) -> Artifacts:
    """Resolve the artifacts from arguments, then the environment, then the default layout."""
    suite = suite or os.environ.get("BARMAP_KERNEL_SUITE") or DEFAULT_SUITE
    qemu_suite = os.environ.get("BARMAP_QEMU_SUITE") or DEFAULT_SUITE
    cache = cache_dir()
    qemu_path = Path(
        qemu
        or os.environ.get("BARMAP_QEMU")
        or cache / "qemu" / qemu_suite / "build" / "qemu-system-x86_64"
    )
    kenv_path = Path(os.environ.get("BARMAP_KENV") or cache / "kernel" / suite / "kernel.env")
    kenv = read_env_file(kenv_path) if kenv_path.is_file() else {}
    kernel_path = Path(kernel or os.environ.get("BARMAP_KERNEL") or kenv.get("VMLINUZ", kenv_path))
    initrd_path = Path(
        initrd
        or os.environ.get("BARMAP_INITRD")
        or REPO_ROOT / "build" / suite / "initramfs.cpio.gz"
    )
    moddir = kenv.get("MODDIR")
    return Artifacts(
        qemu=qemu_path,
        kernel=kernel_path,
        initrd=initrd_path,
        kernel_release=kenv.get("KVER", ""),
        modules_dir=Path(moddir) if moddir else None,
    )
