"""Which QEMU binary, guest kernel and initramfs a run uses.

An argument wins, then the environment ``make`` exports (BARMAP_QEMU,
BARMAP_KENV, the kernel.env written by scripts/kernel.sh, BARMAP_KERNEL, a
user's own kernel image, and BARMAP_INITRD), then the layout of
``barmap.build.paths``.

How the distro kernel boots (``boot``, else ``$BARMAP_BOOT``): ``auto`` boots
the uncompressed ELF ``vmlinux`` through its PVH entry when kernel.env has one
(no emulated decompressor) and the bzImage otherwise; ``pvh`` insists on the
vmlinux; ``bzimage`` boots the compressed image through the real-mode setup.
A user's own kernel (``kernel``, ``$BARMAP_KERNEL``) boots as it is.

The guest tests, the device tests (``barmap.qtest.machine``) and the CLI all resolve
them here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from barmap.build import paths
from barmap.build.paths import read_env_file
from barmap.errors import ConfigError

__all__ = ["BOOTS", "Artifacts", "find_artifacts", "find_qemu", "read_env_file"]


def find_qemu(qemu: str | os.PathLike[str] | None = None, arch: str | None = None) -> Path:
    """The QEMU to run: ``qemu``, else ``$BARMAP_QEMU``, else the cached build of the suite
    (for the guest architecture ``arch``, else $BARMAP_GUEST_ARCH's)."""
    env = os.environ.get("BARMAP_QEMU", "").strip()
    return Path(qemu or env or paths.qemu_binary(arch=arch)).expanduser()


BOOTS: tuple[str, ...] = ("auto", "pvh", "bzimage")


def boot_kind(kernel: Path) -> str:
    """``pvh`` for an ELF kernel (QEMU's -kernel boots it by its PVH note), else ``bzimage``."""
    try:
        with open(kernel, "rb") as f:
            return "pvh" if f.read(4) == b"\x7fELF" else "bzimage"
    except OSError:
        return "bzimage"


@dataclass(frozen=True)
class Artifacts:
    qemu: Path
    kernel: Path
    initrd: Path
    kernel_release: str
    boot: str = "bzimage"  # how ``kernel`` boots: pvh or bzimage
    kernel_env: Path = Path()  # the kernel.env the kernel was found through
    # what that kernel.env's APPEND= asks the command line for (the debug kernel's needs)
    kernel_args: tuple[str, ...] = ()
    # its VMLINUX= (the ELF with BTF and symbols), "" when it names none or another kernel boots
    vmlinux: str = ""
    # how much slower than the distro kernel this one answers (paths.timeout_scale)
    timeout_scale: float = 1.0
    arch: str = "x86_64"  # the guest's architecture (paths.GUEST_ARCHS)

    def check(self) -> None:
        """Raise ConfigError naming the first missing piece and the make target that builds it."""
        for path, what, target in (
            (self.qemu, "QEMU binary", "make qemu"),
            (self.kernel, "guest kernel", "make kernel"),
            (self.initrd, "initramfs", "make image"),
        ):
            if not path.is_file():
                raise ConfigError(f"{what} not found at {path}: run `{target}`")


def _names_kernel(kenv: dict[str, str], kernel: Path) -> bool:
    """Whether ``kernel`` is one of the images kernel.env names (a kernel of the user's own
    is not the one it was written for, however it is given)."""
    names = [kenv.get(key, "") for key in ("VMLINUZ", "VMLINUX", "IMAGE")]
    return any(name and Path(name).resolve() == kernel.resolve() for name in names)


def find_artifacts(
    suite: str | None = None,
    qemu: str | os.PathLike[str] | None = None,
    kernel: str | os.PathLike[str] | None = None,
    initrd: str | os.PathLike[str] | None = None,
    boot: str | None = None,
    arch: str | None = None,
) -> Artifacts:
    """Resolve the artifacts from arguments, then the environment, then the default layout.

    ``suite`` is the kernel suite; BARMAP_KENV and BARMAP_INITRD (which ``make``
    sets for its own suite) only apply when no suite is asked for.
    """
    env = os.environ.get
    arch = paths.guest_arch(arch)
    kenv_path = Path((None if suite else env("BARMAP_KENV")) or paths.kernel_env(suite, arch=arch))
    kenv = read_env_file(kenv_path) if kenv_path.is_file() else {}
    boot = boot or env("BARMAP_BOOT", "").strip() or "auto"
    if boot not in BOOTS:
        raise ConfigError(f"boot must be one of {', '.join(BOOTS)}, not {boot!r}")
    own = kernel or env("BARMAP_KERNEL")
    if own:
        kernel_path = Path(own)
    elif kenv.get("IMAGE"):  # arm64: the Image the compressed vmlinuz holds (scripts/kernel.sh)
        kernel_path = Path(kenv["IMAGE"])
    elif boot != "bzimage" and kenv.get("VMLINUX"):
        kernel_path = Path(kenv["VMLINUX"])
    elif boot == "pvh":
        raise ConfigError(
            f"{kenv_path} names no PVH vmlinux: run `make kernel`, or boot the bzImage"
            " (BOOT=bzimage, --boot bzimage)"
        )
    else:
        kernel_path = Path(kenv.get("VMLINUZ", kenv_path))
    initrd_path = Path(
        initrd or (None if suite else env("BARMAP_INITRD")) or paths.initrd(suite, arch=arch)
    )
    ours = _names_kernel(kenv, kernel_path)
    return Artifacts(
        qemu=find_qemu(qemu, arch),
        kernel=kernel_path,
        initrd=initrd_path,
        kernel_release=kenv.get("KVER", ""),
        boot=boot_kind(kernel_path) if arch == "x86_64" else "image",
        kernel_env=kenv_path,
        # APPEND= and VMLINUX= are for the kernel kernel.env was written for
        kernel_args=tuple(kenv.get("APPEND", "").split()) if ours else (),
        vmlinux=kenv.get("VMLINUX", "") if ours else "",
        timeout_scale=paths.timeout_scale(),
        arch=arch,
    )
