"""A resumable, checked download of one file, and one fetch at a time per directory.

HTTP Range continues an interrupted run where it stopped (a server that ignores Range
restarts it cleanly); the SHA256 the archive's index gives is checked.  Standard
library only.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

PROG = "symbols.py"  # the prefix of the progress lines
CHUNK = 1 << 20


class FetchError(Exception):
    """A one-line reason why a file could not be had."""


@dataclass(frozen=True)
class Package:
    """One .deb as apt's ``download --print-uris`` names it."""

    name: str
    version: str
    uri: str
    size: int
    sha256: str
    filename: str = ""

    @property
    def deb(self) -> str:
        return self.filename or f"{self.name}_{self.version}.deb"


def mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 10e6 or n == 0 else f"{n / 1e6:.1f} MB"


class Progress:
    """Percent, MB and MB/s of a download on a stream: one line rewritten with \\r
    on a terminal, else a line at most every ``interval`` seconds (2)."""

    def __init__(
        self,
        label: str,
        total: int,
        stream: IO[str] | None = None,
        *,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.stream: IO[str] = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.interval = interval if interval is not None else (0.25 if self.tty else 2.0)
        self.clock = clock
        self.width = 0
        self.begin(0)

    def begin(self, done: int) -> None:
        """Count the rate from here (bytes already on disk are not this run's)."""
        self.t0 = self.clock()
        self.base = done
        self.done = done
        self.last = float("-inf")

    def line(self) -> str:
        elapsed = max(self.clock() - self.t0, 1e-6)
        rate = (self.done - self.base) / elapsed / 1e6
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (
            f"{self.label}: {pct:3.0f}% {self.done / 1e6:.0f}/{self.total / 1e6:.0f} MB"
            f" {rate:.1f} MB/s"
        )

    def update(self, done: int, *, force: bool = False) -> None:
        self.done = done
        now = self.clock()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        text = self.line()
        if self.tty:
            self.stream.write("\r" + text.ljust(self.width))
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        self.update(self.done, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _transfer(
    pkg: Package, part: Path, have: int, progress: Progress, timeout: float, log: IO[str]
) -> int:
    """One HTTP request for the rest of ``part`` (all of it when ``have`` is 0);
    returns how many bytes ``part`` holds after it (fewer than the size when the
    connection ended early)."""
    headers = {"User-Agent": "barmap-symbols"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(pkg.uri, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # what is here does not fit what is there
            print(f"{PROG}: {pkg.deb}: the server refused to resume: restarting", file=log)
            part.unlink()
            return 0
        if exc.code >= 500:  # the server's trouble, maybe passing: retried
            raise
        gone = " (BARMAP_REFRESH=1 make kernel: a newer kernel?)" if exc.code == 404 else ""
        raise FetchError(f"{pkg.uri}: HTTP {exc.code} {exc.reason}{gone}") from None
    with response:
        start = 0
        if have and response.status == 206:
            m = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            start = int(m.group(1)) if m else -1
            if start != have:
                print(f"{PROG}: {pkg.deb}: the server resumed at {start}: restarting", file=log)
                part.unlink()
                return 0
        elif have:
            print(f"{PROG}: {pkg.deb}: the server ignores Range: restarting", file=log)
            progress.begin(0)
        done = start
        with part.open("r+b" if start else "wb") as f:
            f.seek(start)
            f.truncate()
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                done += len(chunk)
                if done > pkg.size:
                    f.close()
                    part.unlink()
                    raise FetchError(
                        f"{pkg.uri}: more than the {pkg.size} bytes the archive's index says"
                    )
                f.write(chunk)
                progress.update(done)
        return done


def download(
    pkg: Package,
    dest: Path,
    *,
    log: IO[str] | None = None,
    timeout: float = 60.0,
    attempts: int = 5,
    retry_delay: float = 2.0,
) -> Path:
    """``dest/NAME.deb``, checked against the SHA256: downloaded into
    ``dest/NAME.deb.part``, continued from what a previous run left there."""
    out: IO[str] = log if log is not None else sys.stderr
    scheme = urllib.parse.urlsplit(pkg.uri).scheme
    if scheme not in ("http", "https"):
        raise FetchError(f"{pkg.uri}: cannot download a {scheme}: URI")
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / pkg.deb
    part = dest / (pkg.deb + ".part")
    if final.is_file() and not part.exists():  # a run stopped after the download
        final.rename(part)
    have = part.stat().st_size if part.is_file() else 0
    if have > pkg.size:
        part.unlink()
        have = 0
    if have:
        print(f"{PROG}: {pkg.deb}: resuming at {mb(have)} of {mb(pkg.size)}", file=out)
    progress = Progress(pkg.name, pkg.size, out)
    progress.begin(have)
    stalled = 0
    while have < pkg.size:
        before = have
        try:
            have = _transfer(pkg, part, have, progress, timeout, out)
        except (OSError, http.client.HTTPException) as exc:  # URLError, resets, timeouts
            have = part.stat().st_size if part.is_file() else 0
            reason: object = getattr(exc, "reason", None) or exc
            why = f"{type(exc).__name__}: {reason}"
        else:
            why = "the connection ended early"
        if have >= pkg.size:
            break
        stalled = 0 if have > before else stalled + 1
        if stalled >= attempts:
            progress.finish()
            raise FetchError(
                f"{pkg.uri}: {why}; {mb(have)} of {mb(pkg.size)} kept in {part}: "
                "run again to resume"
            )
        time.sleep(retry_delay * stalled)
    progress.finish()
    print(f"{PROG}: {pkg.deb}: checking its SHA256", file=out)
    digest = sha256_of(part)
    if digest != pkg.sha256:
        part.unlink()
        raise FetchError(
            f"{pkg.deb}: SHA256 mismatch (got {digest}, the archive's index says "
            f"{pkg.sha256}): deleted it, run again to download it anew"
        )
    os.replace(part, final)
    return final


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """One fetch at a time per symbols directory (both would write the same .part)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise FetchError(f"another {PROG} is fetching into {directory}") from None
        yield
