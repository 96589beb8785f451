"""Every path and default of barmap, in this one place.

The cache directory, the Debian suites, the firmware directories and where
each built piece lives are resolved here and nowhere else: the harness imports
this module, the Makefile and the shell scripts run it (standard library only,
so it works before the venv exists)::

    python3 harness/barmap/build/paths.py --make  [--cache DIR] [--qemu-suite S] [--kernel-suite S]
    python3 harness/barmap/build/paths.py --shell [...]      # what scripts/paths.sh evals
    python3 harness/barmap/build/paths.py NAME [...]         # one value, e.g. ``kenv``

Environment: ``BARMAP_CACHE`` moves the cache; ``BARMAP_QEMU_SUITE`` and
``BARMAP_KERNEL_SUITE`` (or ``BARMAP_SUITE`` for both) pick the suites,
``BARMAP_QEMU_FLAVOR`` how QEMU is built, ``BARMAP_KERNEL_FLAVOR`` which guest
kernel (the distribution's or the debug build), ``BARMAP_GUEST_ARCH`` the guest's
architecture (x86_64, arm64: its QEMU, kernel and images sit beside x86's).  An
empty value counts as unset.  Which QEMU, kernel and initramfs a run uses
(``BARMAP_QEMU``, ``BARMAP_KENV``, ``BARMAP_KERNEL``, ``BARMAP_INITRD``) is
decided in ``barmap.build.artifacts``, on top of this layout.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parents[3]
# an optional choice (a suite, a flavor, an architecture): None means the environment's
Opt = Optional[str]

SUITES: tuple[str, ...] = ("bookworm", "trixie")  # QEMU 7.2 / 10.0, kernel 6.1 / 6.12
DEFAULT_SUITE = SUITES[0]
# -L for the built QEMU (installed with Debian's seabios, qemu-system-data, ipxe-qemu)
FIRMWARE_DIRS: tuple[str, ...] = ("/usr/share/qemu", "/usr/share/seabios")
QEMU_BINARY_NAME = "qemu-system-x86_64"
# The guest's architecture (BARMAP_GUEST_ARCH; make's GUEST_ARCH): its Debian name, QEMU's
# target, and the suffix its cache entries and build directories carry beside x86's
GUEST_ARCHS: tuple[str, ...] = ("x86_64", "arm64")
DEB_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
QEMU_TARGET = {"x86_64": "x86_64", "arm64": "aarch64"}
# How scripts/qemu.sh builds QEMU, each in a build directory of its own:
#   plain  the default
#   asan   ASan + UBSan (gcc), the same qemu-system-x86_64 for the qtest suite
#   fuzz   clang, libFuzzer, ASan + UBSan: qemu-fuzz-x86_64 (make fuzz)
QEMU_FLAVORS: tuple[str, ...] = ("plain", "asan", "fuzz")
QEMU_FUZZ_BINARY_NAME = "qemu-fuzz-x86_64"
# Which guest kernel: the distribution's packages (scripts/kernel.sh), or debug, built
# from the distribution's kernel source with KASAN, lockdep, UBSAN, KFENCE
# (scripts/kernel-debug.sh, images/debug-kernel.config)
KERNEL_FLAVORS: tuple[str, ...] = ("distro", "debug")
# How much longer the guest takes on each kernel: every console timeout of the
# harness is multiplied by it (BARMAP_TIMEOUT_SCALE overrides).  Under the debug
# kernel's sanitizers everything runs several times slower (a boot: ~9 s under TCG
# against ~1.7 s).
KERNEL_FLAVOR_SLOWDOWN = {"distro": 1.0, "debug": 8.0}


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (comments and blank lines skipped), as scripts/kernel.sh writes them.

    make and the scripts source the same file with the shell, so a value is read as the
    shell reads it: ``APPEND="a b"`` is ``a b`` (unquoted, ``a b`` would run ``b``).
    """
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            try:
                words = shlex.split(value)
            except ValueError as e:
                raise ValueError(f"{path}: {key.strip()}: {e}") from None
            out[key.strip()] = " ".join(words)
    return out


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def cache_dir(cache: str | os.PathLike[str] | None = None) -> Path:
    """Where heavy artifacts live: ``cache``, else ``$BARMAP_CACHE``, else ~/.cache/barmap."""
    path = Path(cache or _env("BARMAP_CACHE") or Path.home() / ".cache" / "barmap")
    return path.expanduser().absolute()


def qemu_suite(suite: Opt = None) -> str:
    return suite or _env("BARMAP_QEMU_SUITE") or _env("BARMAP_SUITE") or DEFAULT_SUITE


def kernel_suite(suite: Opt = None) -> str:
    return suite or _env("BARMAP_KERNEL_SUITE") or _env("BARMAP_SUITE") or DEFAULT_SUITE


def _flavor(what: str, given: str | None, env: str, choices: tuple[str, ...]) -> str:
    """``given``, else ``$env``, else the first choice; anything else is a ValueError."""
    value = given or _env(env) or choices[0]
    if value not in choices:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(choices)}")
    return value


def qemu_flavor(flavor: Opt = None) -> str:
    return _flavor("QEMU flavor", flavor, "BARMAP_QEMU_FLAVOR", QEMU_FLAVORS)


def guest_arch(arch: Opt = None) -> str:
    return _flavor("guest architecture", arch, "BARMAP_GUEST_ARCH", GUEST_ARCHS)


def _arch_suffix(arch: str | None) -> str:
    """ "" for x86_64 (the first layout, kept), "-arm64" for arm64."""
    name = guest_arch(arch)
    return "" if name == GUEST_ARCHS[0] else f"-{name}"


def qemu_dir(suite: Opt = None, cache: Opt = None) -> Path:
    """apt state, source tree and builds of one suite's QEMU (scripts/qemu.sh)."""
    return cache_dir(cache) / "qemu" / qemu_suite(suite)


def qemu_build_dir(
    suite: str | None = None,
    cache: str | None = None,
    flavor: str | None = None,
    arch: str | None = None,
) -> Path:
    """One build of the suite's QEMU source: build, build-asan; build-aarch64(-asan) for arm64."""
    name = "build"
    if guest_arch(arch) != GUEST_ARCHS[0]:
        name += f"-{QEMU_TARGET[guest_arch(arch)]}"
    if qemu_flavor(flavor) != "plain":
        name += f"-{qemu_flavor(flavor)}"
    return qemu_dir(suite, cache) / name


def qemu_binary(suite: Opt = None, cache: Opt = None, flavor: Opt = None, arch: Opt = None) -> Path:
    """Where scripts/qemu.sh builds QEMU (not ``$BARMAP_QEMU``: see barmap.build.artifacts);
    for the fuzz flavor, the libFuzzer binary."""
    if qemu_flavor(flavor) == "fuzz":
        return qemu_build_dir(suite, cache, flavor) / QEMU_FUZZ_BINARY_NAME
    target = QEMU_TARGET[guest_arch(arch)]
    return qemu_build_dir(suite, cache, flavor, arch) / f"qemu-system-{target}"


def kernel_flavor(flavor: Opt = None) -> str:
    return _flavor("kernel flavor", flavor, "BARMAP_KERNEL_FLAVOR", KERNEL_FLAVORS)


def timeout_scale() -> float:
    """BARMAP_TIMEOUT_SCALE, else the slowdown of the kernel flavor in use."""
    value = _env("BARMAP_TIMEOUT_SCALE")
    if value:
        try:
            scale = float(value)
        except ValueError:
            scale = 0.0
        if scale <= 0:
            raise ValueError(f"BARMAP_TIMEOUT_SCALE={value!r} is not a positive number")
        return scale
    return KERNEL_FLAVOR_SLOWDOWN[kernel_flavor()]


def kernel_dir(suite: Opt = None, cache: Opt = None, arch: Opt = None) -> Path:
    """One suite's unpacked kernel packages and their apt state (scripts/kernel.sh)."""
    return cache_dir(cache) / "kernel" / (kernel_suite(suite) + _arch_suffix(arch))


def kernel_env(suite: Opt = None, cache: Opt = None, flavor: Opt = None, arch: Opt = None) -> Path:
    """The ``KVER=``/``VMLINUZ=``/``KDIR=``/``MODDIR=`` file scripts/kernel.sh writes
    (the debug kernel's: scripts/kernel-debug.sh, in the suite's ``debug/``)."""
    base = kernel_dir(suite, cache, arch)
    return (base if kernel_flavor(flavor) == "distro" else base / "debug") / "kernel.env"


def checkpatch_dir(cache: Opt = None) -> Path:
    return cache_dir(cache) / "checkpatch"


def build_dir(suite: Opt = None, flavor: Opt = None, arch: Opt = None) -> Path:
    """The module, the guest tools and the initramfs built for one kernel suite."""
    name = kernel_suite(suite) + _arch_suffix(arch)
    if kernel_flavor(flavor) != "distro":
        name += f"-{kernel_flavor(flavor)}"
    return REPO_ROOT / "build" / name


def initrd(suite: Opt = None, flavor: Opt = None, arch: Opt = None) -> Path:
    return build_dir(suite, flavor, arch) / "initramfs.cpio"


def ssh_initrd(initrd: Path) -> Path:
    """The SSH server's piece of an initramfs (images/initramfs.sh writes it beside it)."""
    return initrd.with_name(f"{initrd.stem}-ssh{initrd.suffix}")


def firmware_file(name: str) -> Path | None:
    """The first firmware directory holding ``name`` (as QEMU's -L search finds it)."""
    for directory in FIRMWARE_DIRS:
        path = Path(directory) / name
        if path.is_file():
            return path
    return None


def fuzz_dir(suite: Opt = None) -> Path:
    """make fuzz's corpus and crash reproducers (scripts/fuzz.sh), per QEMU suite."""
    return REPO_ROOT / "build" / "fuzz" / qemu_suite(suite)


def layout(
    cache: str | None = None,
    qemu: str | None = None,
    kernel: str | None = None,
    flavor: str | None = None,
    kflavor: str | None = None,
    arch: str | None = None,
) -> dict[str, str]:
    """The values the Makefile and scripts/paths.sh use, by their variable names there."""
    name = guest_arch(arch)
    return {
        "GUEST_ARCH": name,
        "DEB_ARCH": DEB_ARCH[name],
        "QEMU_TARGET": QEMU_TARGET[name],
        "BARMAP_CACHE": str(cache_dir(cache)),
        "QEMU_SUITE": qemu_suite(qemu),
        "QEMU_FLAVOR": qemu_flavor(flavor),
        "KERNEL_SUITE": kernel_suite(kernel),
        "KERNEL_FLAVOR": kernel_flavor(kflavor),
        "QEMU_DIR": str(qemu_dir(qemu, cache)),
        "QEMU_BUILD": str(qemu_build_dir(qemu, cache, flavor, arch)),
        "QEMU_BIN": str(qemu_binary(qemu, cache, flavor, arch)),
        "FUZZ_DIR": str(fuzz_dir(qemu)),
        "KERNEL_DIR": str(kernel_dir(kernel, cache, arch)),
        "KENV": str(kernel_env(kernel, cache, kflavor, arch)),
        "CHECKPATCH_DIR": str(checkpatch_dir(cache)),
        "OUT": str(build_dir(kernel, kflavor, arch)),
        "INITRD": str(initrd(kernel, kflavor, arch)),
        "FIRMWARE_DIRS": " ".join(FIRMWARE_DIRS),
        "SUITES": " ".join(SUITES),
    }


_NAMES = {
    "cache": "BARMAP_CACHE",
    "qemu": "QEMU_BIN",
    "kenv": "KENV",
    "initrd": "INITRD",
    "out": "OUT",
}


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="paths.py", description=__doc__.split("\n\n")[0])
    form = p.add_mutually_exclusive_group(required=True)
    form.add_argument("--make", action="store_true", help="NAME:=value words for $(eval)")
    form.add_argument("--shell", action="store_true", help="NAME=value lines for eval")
    form.add_argument("name", nargs="?", choices=sorted(_NAMES), help="print one value")
    p.add_argument("--cache", help="the cache directory (default $BARMAP_CACHE)")
    p.add_argument("--qemu-suite", help=f"one of {', '.join(SUITES)} (default {DEFAULT_SUITE})")
    p.add_argument("--kernel-suite", help=f"one of {', '.join(SUITES)} (default {DEFAULT_SUITE})")
    p.add_argument(
        "--qemu-flavor", help=f"one of {', '.join(QEMU_FLAVORS)} (default {QEMU_FLAVORS[0]})"
    )
    p.add_argument(
        "--kernel-flavor",
        help=f"one of {', '.join(KERNEL_FLAVORS)} (default {KERNEL_FLAVORS[0]})",
    )
    p.add_argument(
        "--guest-arch", help=f"one of {', '.join(GUEST_ARCHS)} (default {GUEST_ARCHS[0]})"
    )
    args = p.parse_args(argv)
    try:
        values = layout(
            args.cache or None,
            args.qemu_suite or None,
            args.kernel_suite or None,
            args.qemu_flavor or None,
            args.kernel_flavor or None,
            args.guest_arch or None,
        )
        if values["GUEST_ARCH"] != GUEST_ARCHS[0] and values["KERNEL_FLAVOR"] != "distro":
            raise ValueError(f"GUEST_ARCH={values['GUEST_ARCH']} has the distro kernel only")
        if values["GUEST_ARCH"] != GUEST_ARCHS[0] and values["QEMU_FLAVOR"] == "fuzz":
            raise ValueError("the fuzz flavor is x86_64 only")
    except ValueError as exc:
        print(f"paths.py: {exc}", file=sys.stderr)
        return 2
    if args.name:
        print(values[_NAMES[args.name]])
    elif args.make:
        # one NAME:=value word each (the lists are for the shell only); make cannot
        # take a path with spaces anyway
        words = {k: v for k, v in values.items() if k not in ("FIRMWARE_DIRS", "SUITES")}
        words["SUITES_COMMA"] = ",".join(SUITES)  # one word; the Makefile splits it
        spaced = [k for k, v in words.items() if any(c.isspace() for c in v)]
        if spaced:
            print(f"paths.py: make cannot use paths with spaces: {spaced}", file=sys.stderr)
            return 1
        print(" ".join(f"{k}:={v}" for k, v in words.items()))
    else:
        print("\n".join(f"{k}={shlex.quote(v)}" for k, v in values.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
