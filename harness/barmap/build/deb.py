"""Files out of a .deb without installing it: the -dbg vmlinux, the source tarball."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from barmap.build.fetch import FetchError

DEBUG_VMLINUX = "./usr/lib/debug/boot/vmlinux-{kver}"
SOURCE_TARBALL = "./usr/src/linux-source-{series}.tar.xz"
SOURCE_STAMP = ".barmap-source"  # in an unpacked tree: which package and kernel it is of


def series(kver: str) -> str:
    """``6.1`` of ``6.1.0-57-amd64``: the X.Y of the linux-source-X.Y package."""
    m = re.match(r"(\d+\.\d+)", kver)
    if not m:
        raise FetchError(f"cannot tell the kernel series of {kver!r}")
    return m.group(1)


def _tar_from_deb(deb: Path, into: Path, members: list[str]) -> None:
    """``dpkg-deb --fsys-tarfile DEB | tar -x -C INTO MEMBER...``: only those files.
    tar stops at the first occurrence, so dpkg-deb may die of the closed pipe:
    tar's status and the files decide."""
    with tempfile.TemporaryFile("w+") as dpkg_err:
        dpkg = subprocess.Popen(
            ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=dpkg_err
        )
        assert dpkg.stdout is not None
        tar = subprocess.run(
            ["tar", "-x", "--occurrence=1", "-C", str(into), *members],
            stdin=dpkg.stdout,
            capture_output=True,
            text=True,
        )
        dpkg.stdout.close()
        dpkg.wait()
        dpkg_err.seek(0)
        err = dpkg_err.read().strip()
    if tar.returncode:
        why = (tar.stderr.strip() or err).splitlines()
        raise FetchError(f"{deb}: cannot extract {' '.join(members)}: {' '.join(why[-2:])}")


@contextmanager
def _member(deb: Path, member: str, scratch: Path) -> Iterator[Path]:
    """The file ``member`` of ``deb``, extracted under ``scratch`` (removed afterwards)."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        _tar_from_deb(deb, scratch, [member])
        got = scratch / member
        if not got.is_file():
            raise FetchError(f"{deb} has no {member}")
        yield got
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def extract_vmlinux(deb: Path, kver: str, out: Path) -> Path:
    """Only ``./usr/lib/debug/boot/vmlinux-KVER`` of ``deb``, as ``out``."""
    with _member(deb, DEBUG_VMLINUX.format(kver=kver), out.parent / f".{out.name}.extract") as got:
        os.replace(got, out)
    return out


def extract_source(deb: Path, kver: str, out: Path, stamp: str) -> Path:
    """The ``linux-source-X.Y.tar.xz`` inside ``deb`` unpacked as the tree ``out``
    (its top directory stripped), with ``stamp`` in ``out/.barmap-source``."""
    member = SOURCE_TARBALL.format(series=series(kver))
    new = out.parent / f".{out.name}.new"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    try:
        with _member(deb, member, out.parent / f".{out.name}.extract") as tarball:
            r = subprocess.run(
                ["tar", "-xJf", str(tarball), "-C", str(new), "--strip-components=1"],
                capture_output=True,
                text=True,
            )
            if r.returncode:
                raise FetchError(f"{tarball}: {r.stderr.strip().splitlines()[-1:]}")
        (new / SOURCE_STAMP).write_text(stamp + "\n")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(new, out)
    finally:
        shutil.rmtree(new, ignore_errors=True)
    return out
