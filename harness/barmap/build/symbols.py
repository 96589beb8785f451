"""The guest kernel's debug symbols (and source) for gdb, fetched on request.

Debian ships the DWARF of its kernel as ``linux-image-KVER-dbg``: an ~860 MB
package (5.7 GB unpacked, mostly the modules' symbols) of which only
``./usr/lib/debug/boot/vmlinux-KVER`` is kept, in ``KERNEL_DIR/symbols/``.  The
package is asked of the private apt state of scripts/kernel.sh (pinned to the
version of the cached kernel, read from its banner) and downloaded here with
``urllib``: HTTP Range resumes an interrupted run where it stopped (a server that
ignores Range restarts it cleanly), the SHA256 of the archive's index is checked,
and the .deb is deleted once the vmlinux is out.  ``--source`` adds the kernel
source the same way (``linux-source-X.Y``, the tarball in it unpacked into
``KERNEL_DIR/symbols/src/``, for gdb's ``directory``).  Nothing is installed and
nothing under /etc is touched.  Standard library only::

    python3 -m barmap.build.symbols [--suite SUITE] [--cache DIR] [--source]

prints the vmlinux's path (and the source tree's with ``--source``) on stdout;
a second run finds them and does nothing.  Exit 2: the kernel is not fetched yet
(``make kernel``).  The debug kernel flavor (``BARMAP_KERNEL_FLAVOR=debug``) is
built here with its symbols: its vmlinux is printed, nothing is fetched.
"""

from __future__ import annotations

import argparse
import mmap
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from barmap.build import apt, paths
from barmap.build.deb import SOURCE_STAMP, extract_source, extract_vmlinux, series
from barmap.build.fetch import FetchError, Package, download, locked, mb

PROG = "symbols.py"
# How much of the -dbg package the vmlinux is, for the estimate printed before the
# download (6.1.0-57-amd64: 630 MB of vmlinux in an 859 MB package); and how much
# larger the source tree is than its package (6.1: ~1.4 GB from 139 MB).
VMLINUX_SHARE = 0.74
SOURCE_GROWTH = 10


SymbolsError = FetchError  # a one-line reason why the symbols could not be had


class NotFetched(SymbolsError):
    """The suite's kernel is not in the cache yet (exit 2)."""


# ---------------------------------------------------------------------------
# The cached kernel and the apt state of scripts/kernel.sh


def kernel_release(suite: str | None = None, cache: str | None = None) -> str:
    """KVER of the suite's cached distro kernel; NotFetched when there is none."""
    env = paths.kernel_env(suite, cache, "distro")
    kver = paths.read_env_file(env).get("KVER", "") if env.is_file() else ""
    if not kver:
        raise NotFetched(
            f"no {paths.kernel_suite(suite)} kernel in {env.parent}: run make kernel first"
        )
    return kver


_BANNER = re.compile(rb"Linux version (\S+) \([^\n]{0,400}? Debian (\S+) \(")


def banner_version(image: Path, kver: str) -> str | None:
    """The Debian version in an uncompressed kernel's ``Linux version KVER ...
    Debian V (date)`` banner, or None (no such file, or no banner)."""
    try:
        with image.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            for found in _BANNER.finditer(m):
                if found.group(1).decode() == kver:
                    return str(found.group(2).decode())
    except (OSError, ValueError):
        pass
    return None


def apt_state(suite: str | None = None, cache: str | None = None) -> Path:
    """The suite's private apt state (harness/barmap/build/apt.py; made by scripts/kernel.sh,
    here if it is missing)."""
    directory = paths.kernel_dir(suite, cache) / "apt"
    if not (directory / "apt-opts").is_file():
        try:
            apt.state(directory, paths.kernel_suite(suite))
        except apt.AptError as exc:
            raise SymbolsError(str(exc)) from None
    return directory


def candidate_version(directory: Path, package: str) -> str | None:
    """apt's candidate version of ``package`` in the private state, or None."""
    try:
        return apt.version(directory, package)
    except (apt.AptError, KeyError):
        return None


_URI_LINE = re.compile(r"^'(?P<uri>[^']+)' (?P<file>\S+) (?P<size>\d+) (?P<hash>\S+)")


def parse_print_uris(text: str) -> list[Package]:
    """The packages of apt's ``download --print-uris`` output (apt.print_uris):
    ``'URI' NAME_VERSION_ARCH.deb SIZE SHA256:HEX`` lines."""
    out = []
    for line in text.splitlines():
        m = _URI_LINE.match(line)
        if not m:
            continue
        filename = m["file"]
        name, _, rest = filename.partition("_")
        version = urllib.parse.unquote(rest.rpartition("_")[0])  # the epoch is %3a
        algo, _, digest = m["hash"].partition(":")
        if algo.upper() != "SHA256" or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise SymbolsError(f"apt gave no SHA256 for {filename}: {m['hash']}")
        out.append(Package(name, version, m["uri"], int(m["size"]), digest, filename))
    return out


def query_packages(specs: list[str], directory: Path) -> list[Package]:
    """URI, size and SHA256 of each ``NAME[=VERSION]`` in ``specs``, in that order
    (the apt lists as they are: no update)."""
    try:
        found = {p.name: p for p in parse_print_uris(apt.print_uris(directory, specs))}
    except apt.AptError as exc:
        raise SymbolsError(str(exc)) from None
    names = [s.partition("=")[0] for s in specs]
    missing = [n for n in names if n not in found]
    if missing:
        raise SymbolsError(f"apt named no .deb for {', '.join(missing)}")
    return [found[n] for n in names]


def resolve_packages(
    specs: list[str], suite: str | None = None, cache: str | None = None
) -> list[Package]:
    """query_packages on the suite's private apt state, after an update when the lists as
    they are do not have them."""
    directory = apt_state(suite, cache)
    try:
        return query_packages(specs, directory)
    except SymbolsError:
        pass
    print(f"{PROG}: refreshing the package lists ({directory})", file=sys.stderr)
    try:
        apt.update(directory)
    except apt.AptError as exc:
        raise SymbolsError(f"cannot reach the archive: {exc}") from None
    try:
        return query_packages(specs, directory)
    except SymbolsError as exc:
        raise SymbolsError(
            f"the archive has no {' '.join(specs)} ({exc}); if the cached kernel is no "
            "longer the archive's, BARMAP_REFRESH=1 make kernel fetches the current one"
        ) from None


def kernel_version(suite: str | None = None, cache: str | None = None) -> str | None:
    """The Debian version of the cached kernel: from its banner in the cached
    uncompressed vmlinux (what is booted), else apt's candidate of its image."""
    env_file = paths.kernel_env(suite, cache, "distro")
    env = paths.read_env_file(env_file)
    kver = env.get("KVER", "")
    if env.get("VMLINUX"):
        version = banner_version(Path(env["VMLINUX"]), kver)
        if version:
            return version
    return candidate_version(apt_state(suite, cache), f"linux-image-{kver}")


# ---------------------------------------------------------------------------
# Download (resumable) and extraction: given the URI, size and hash directly


def _drop_stale_parts(dl: Path, pkg: Package) -> None:
    """Partial downloads of other versions of ``pkg``'s kind (an older kernel's)."""
    kind = "linux-image-*-dbg" if pkg.name.endswith("-dbg") else "linux-source-*"
    for old in dl.glob(f"{kind}_*.deb*"):
        if old.name not in (pkg.deb, pkg.deb + ".part"):
            old.unlink()


def _check_space(directory: Path, pkg: Package, unpacked: float) -> None:
    part = directory / "dl" / (pkg.deb + ".part")
    have = part.stat().st_size if part.is_file() else 0
    need = pkg.size - have + unpacked
    free = shutil.disk_usage(directory).free
    if free < need:
        raise SymbolsError(f"{directory}: {mb(free)} free, {pkg.name} needs about {mb(need)}")


def _from_deb(
    pkg: Package,
    directory: Path,
    unpacked: float,
    what: str,
    take: Callable[[Path], object],
    *,
    log: IO[str] | None = None,
    timeout: float = 60.0,
    retry_delay: float = 2.0,
) -> None:
    """``take`` what is wanted of ``pkg``'s .deb, downloaded into ``directory/dl`` under
    the directory's lock with room for ``unpacked`` bytes more; the .deb deleted after."""
    with locked(directory):
        _check_space(directory, pkg, unpacked)
        _drop_stale_parts(directory / "dl", pkg)
        deb = download(pkg, directory / "dl", log=log, timeout=timeout, retry_delay=retry_delay)
        print(f"{PROG}: {what} from {deb.name}", file=log or sys.stderr)
        take(deb)
        deb.unlink()


def fetch_vmlinux(pkg: Package, kver: str, directory: Path, **how: Any) -> Path:
    """``directory/vmlinux-KVER`` from the -dbg package ``pkg`` (``how``: _from_deb's log,
    timeout, retry_delay); at once when it is there.  Older kernels' vmlinux files in
    ``directory`` are removed."""
    out = directory / f"vmlinux-{kver}"
    if out.is_file():
        return out
    share = VMLINUX_SHARE * pkg.size
    _from_deb(pkg, directory, share, f"extracting vmlinux-{kver}",
              lambda deb: extract_vmlinux(deb, kver, out), **how)  # fmt: skip
    for old in directory.glob("vmlinux-*"):
        if old != out:
            old.unlink()
    return out


def fetch_source(pkg: Package, kver: str, directory: Path, **how: Any) -> Path:
    """``directory/src``: the tree of the linux-source package ``pkg``."""
    out = directory / "src"
    stamp = f"{pkg.name} {pkg.version} {kver}"
    if _stamp(out) != stamp:
        _from_deb(pkg, directory, SOURCE_GROWTH * pkg.size, "unpacking the source",
                  lambda deb: extract_source(deb, kver, out, stamp), **how)  # fmt: skip
    return out


def _stamp(src: Path) -> str:
    try:
        return (src / SOURCE_STAMP).read_text().strip()
    except OSError:
        return ""


# ---------------------------------------------------------------------------
# What the harness asks (barmap debug)


def symbols_dir(suite: str | None = None, cache: str | None = None) -> Path:
    return paths.kernel_dir(suite, cache) / "symbols"


def _debug_kdir(suite: str | None, cache: str | None) -> Path | None:
    env = paths.kernel_env(suite, cache, "debug")
    kdir = paths.read_env_file(env).get("KDIR", "") if env.is_file() else ""
    return Path(kdir) if kdir else None


def symbols_vmlinux(
    suite: str | None = None, cache: str | None = None, flavor: str | None = None
) -> Path | None:
    """The guest kernel's vmlinux with DWARF, if it is here: the distro kernel's
    from ``make symbols``, the debug flavor's from its build; else None."""
    if paths.kernel_flavor(flavor) == "debug":
        kdir = _debug_kdir(suite, cache)
        path = kdir / "vmlinux" if kdir else None
    else:
        try:
            kver = kernel_release(suite, cache)
        except NotFetched:
            return None
        path = symbols_dir(suite, cache) / f"vmlinux-{kver}"
    return path if path is not None and path.is_file() else None


def source_dir(
    suite: str | None = None, cache: str | None = None, flavor: str | None = None
) -> Path | None:
    """The guest kernel's source tree, if it is here (``make symbols SOURCE=1``; the
    debug flavor's is the one it is built from); else None."""
    if paths.kernel_flavor(flavor) == "debug":
        kdir = _debug_kdir(suite, cache)
        src = (kdir / "source").resolve() if kdir else None
        return src if src is not None and src.is_dir() else None
    try:
        kver = kernel_release(suite, cache)
    except NotFetched:
        return None
    src = symbols_dir(suite, cache) / "src"
    return src if _stamp(src).endswith(f" {kver}") else None


_PREFIX = re.compile(rb"(/[\x21-\x7e]{1,200}?)/debian/build/build_")


def source_prefix(vmlinux: Path) -> str | None:
    """The source root a Debian vmlinux's DWARF names in absolute paths (its
    assembler files: ``/build/reproducible-path/linux-6.1.192/arch/...``; the C
    files are named relative to the root, found through gdb's ``directory``)."""
    try:
        with vmlinux.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            found = _PREFIX.search(m)
            return found.group(1).decode() if found else None  # while m is open
    except (OSError, ValueError):
        return None


def gdb_source_commands(
    suite: str | None = None, cache: str | None = None, flavor: str | None = None
) -> list[str]:
    """The gdb commands that show the guest kernel's source (none when it is not here)."""
    src = source_dir(suite, cache, flavor)
    if src is None:
        return []
    commands = [f"directory {src}"]
    vmlinux = symbols_vmlinux(suite, cache, flavor)
    prefix = source_prefix(vmlinux) if vmlinux and paths.kernel_flavor(flavor) != "debug" else None
    if prefix:
        commands.append(f"set substitute-path {prefix} {src}")
    return commands


# ---------------------------------------------------------------------------


def fetch(
    suite: str | None = None,
    cache: str | None = None,
    *,
    source: bool = False,
    log: IO[str] | None = None,
) -> list[Path]:
    """What ``symbols.py`` does: the vmlinux (and the source tree), fetched if needed."""
    out = log if log is not None else sys.stderr
    kver = kernel_release(suite, cache)
    directory = symbols_dir(suite, cache)
    vmlinux = symbols_vmlinux(suite, cache, "distro")
    src = source_dir(suite, cache, "distro") if source else None
    if vmlinux and (src or not source):
        return [vmlinux, *([src] if src else [])]
    version = kernel_version(suite, cache)
    pin = f"={version}" if version else ""
    specs = []
    if vmlinux is None:
        specs.append(f"linux-image-{kver}-dbg{pin}")
    if source and src is None:
        specs.append(f"linux-source-{series(kver)}{pin}")
    pkgs = resolve_packages(specs, suite, cache)
    for pkg in pkgs:
        keeps = (
            f"keeps vmlinux (~{mb(VMLINUX_SHARE * pkg.size)})"
            if pkg.name.endswith("-dbg")
            else f"unpacks the source (~{mb(SOURCE_GROWTH * pkg.size)})"
        )
        part = directory / "dl" / (pkg.deb + ".part")
        here = part.stat().st_size if part.is_file() else 0
        already = f" ({mb(here)} of it already here)" if here else ""
        print(f"{pkg.name}: {mb(pkg.size)} to download{already}, {keeps}", file=out)
    result = []
    for pkg in pkgs:
        if pkg.name.endswith("-dbg"):
            start = time.monotonic()
            vmlinux = fetch_vmlinux(pkg, kver, directory, log=out)
            took = time.monotonic() - start
            size = vmlinux.stat().st_size
            print(f"{PROG}: {vmlinux.name}: {mb(size)}, in {took:.0f} s", file=out)
        else:
            src = fetch_source(pkg, kver, directory, log=out)
    if vmlinux:
        result.append(vmlinux)
    if source and src:
        result.append(src)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--suite", choices=paths.SUITES, help=f"the kernel's suite (default {paths.kernel_suite()})"
    )
    p.add_argument("--cache", help="the cache directory (default $BARMAP_CACHE)")
    p.add_argument("--source", action="store_true", help="the kernel source too, for gdb")
    args = p.parse_args(argv)
    suite, cache = args.suite or None, args.cache or None
    try:
        if paths.kernel_flavor() == "debug":
            found = symbols_vmlinux(suite, cache, "debug")
            if found is None:
                print(
                    f"{PROG}: no debug kernel: run make kernel KERNEL_FLAVOR=debug first",
                    file=sys.stderr,
                )
                return 2
            print(f"{PROG}: the debug kernel is built here with its symbols", file=sys.stderr)
            src = source_dir(suite, cache, "debug") if args.source else None
            print("\n".join(str(x) for x in (found, src) if x))
            return 0
        result = fetch(suite, cache, source=args.source)
    except NotFetched as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except (SymbolsError, ValueError, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted: run again to resume the download", file=sys.stderr)
        return 130
    if args.source:
        for command in gdb_source_commands(suite, cache, "distro"):
            print(f"{PROG}: gdb: {command}", file=sys.stderr)
    print("\n".join(str(x) for x in result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
