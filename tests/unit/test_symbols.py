"""harness/barmap/build/symbols.py: the guest kernel's debug symbols, fetched on request.

No 860 MB download: a stand-in -dbg package is built here with ``dpkg-deb
--build`` (a few hundred KB of vmlinux beside files that must not be kept) and
served from a local HTTP server that answers Range requests, or ignores them, or
closes the connection after a given number of bytes.  The apt query is stubbed
(one test runs the real one for the cached kernel, or says why it cannot).
"""

from __future__ import annotations

import hashlib
import io
import random
import re
import subprocess
import tarfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from barmap.build import fetch as fetching
from barmap.build import paths, symbols
from barmap.build.symbols import Package, SymbolsError

KVER = "9.9.0-1-test"
VERSION = "9.9.3-1"
DBG = f"linux-image-{KVER}-dbg"
VMLINUX = random.Random(1).randbytes(300_000)


class Archive:
    """What the test server serves and what it was asked."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.ignore_range = False
        self.cuts: list[int] = []  # per request: close the connection after this many bytes
        self.errors: list[int] = []  # per request, first: answer with this HTTP status
        self.sent = 0


def handler(archive: Archive) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            archive.requests.append((self.path, rng))
            data = archive.files.get(self.path)
            if archive.errors:
                self.send_error(archive.errors.pop(0))
                return
            if data is None:
                self.send_error(404)
                return
            start = 0
            if rng and not archive.ignore_range:
                start = int(rng.removeprefix("bytes=").rstrip("-"))
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if archive.cuts:
                body = body[: archive.cuts.pop(0)]  # then the connection closes
            self.wfile.write(body)
            archive.sent += len(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def archive() -> Iterator[tuple[Archive, str]]:
    state = Archive()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def build_deb(root: Path, name: str, files: dict[str, bytes], out: Path) -> bytes:
    """A .deb of ``files`` (paths relative to /) made by dpkg-deb, as its bytes."""
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {VERSION}\nArchitecture: amd64\n"
        "Maintainer: barmap tests <tests@example.invalid>\nDescription: a stand-in\n"
    )
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out.read_bytes()


@pytest.fixture(scope="module")
def dbg_deb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    tmp = tmp_path_factory.mktemp("dbg")
    files = {
        "usr/lib/debug/.build-id/ab/cdef.debug": b"not kept\n",
        f"usr/lib/debug/boot/vmlinux-{KVER}": VMLINUX,
        f"usr/lib/debug/lib/modules/{KVER}/kernel/barmap.ko": random.Random(2).randbytes(50_000),
        f"usr/share/doc/{DBG}/copyright": b"not kept either\n",
    }
    return build_deb(tmp / "root", DBG, files, tmp / "dbg.deb")


def package(base: str, data: bytes, *, sha256: str | None = None) -> Package:
    return Package(
        DBG,
        VERSION,
        f"{base}/pool/{DBG}_{VERSION}_amd64.deb",
        len(data),
        sha256 or hashlib.sha256(data).hexdigest(),
        f"{DBG}_{VERSION}_amd64.deb",
    )


def serve(archive: tuple[Archive, str], data: bytes, **kw: str) -> tuple[Archive, Package]:
    state, base = archive
    pkg = package(base, data, **kw)
    state.files[pkg.uri[len(base) :]] = data
    return state, pkg


def fetch(pkg: Package, directory: Path) -> tuple[Path, str]:
    log = io.StringIO()
    return symbols.fetch_vmlinux(pkg, KVER, directory, log=log, retry_delay=0), log.getvalue()


def kept(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.name != ".lock")


def test_a_download_keeps_only_the_vmlinux(archive: tuple[Archive, str], dbg_deb: bytes,
                                           tmp_path: Path) -> None:  # fmt: skip
    state, pkg = serve(archive, dbg_deb)
    out, log = fetch(pkg, tmp_path / "symbols")
    assert out == tmp_path / "symbols" / f"vmlinux-{KVER}"
    assert out.read_bytes() == VMLINUX
    assert kept(tmp_path / "symbols") == ["dl", f"vmlinux-{KVER}"]  # no .deb, no usr/
    assert state.requests == [(pkg.uri[len(archive[1]) :], None)]
    assert "100%" in log and "checking its SHA256" in log


def test_an_interrupted_download_resumes_where_it_stopped(
    archive: tuple[Archive, str], dbg_deb: bytes, tmp_path: Path
) -> None:
    state, pkg = serve(archive, dbg_deb)
    state.cuts = [100_000]  # the first response ends after 100 kB
    out, _ = fetch(pkg, tmp_path)
    assert out.read_bytes() == VMLINUX
    assert [r for _, r in state.requests] == [None, "bytes=100000-"]
    assert state.sent == len(dbg_deb)  # nothing fetched twice


def test_a_part_left_by_an_earlier_run_is_continued(
    archive: tuple[Archive, str], dbg_deb: bytes, tmp_path: Path
) -> None:
    state, pkg = serve(archive, dbg_deb)
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / f"{pkg.deb}.part").write_bytes(dbg_deb[:123_457])
    out, log = fetch(pkg, tmp_path)
    assert out.read_bytes() == VMLINUX
    assert [r for _, r in state.requests] == ["bytes=123457-"]
    assert state.sent == len(dbg_deb) - 123_457
    assert "resuming at" in log
    assert kept(tmp_path) == ["dl", f"vmlinux-{KVER}"]


def test_a_run_that_gives_up_leaves_the_part_for_the_next_one(
    archive: tuple[Archive, str], dbg_deb: bytes, tmp_path: Path
) -> None:
    state, pkg = serve(archive, dbg_deb)
    state.cuts = [80_000] + [0] * 10  # then the server sends nothing at all
    with pytest.raises(SymbolsError, match="run again to resume"):
        fetch(pkg, tmp_path)
    part = tmp_path / "dl" / f"{pkg.deb}.part"
    assert part.read_bytes() == dbg_deb[:80_000]
    assert not (tmp_path / f"vmlinux-{KVER}").exists()
    state.cuts, state.requests = [], []
    out, _ = fetch(pkg, tmp_path)
    assert out.read_bytes() == VMLINUX
    assert state.requests[0][1] == "bytes=80000-"


def test_ctrl_c_keeps_what_came_for_the_next_run(
    archive: tuple[Archive, str], dbg_deb: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, pkg = serve(archive, dbg_deb)
    monkeypatch.setattr(fetching, "CHUNK", 65536)
    update = fetching.Progress.update

    def interrupt(self: fetching.Progress, done: int, *, force: bool = False) -> None:
        if done >= 3 * 65536:
            raise KeyboardInterrupt
        update(self, done, force=force)

    monkeypatch.setattr(fetching.Progress, "update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        fetch(pkg, tmp_path)
    part = tmp_path / "dl" / f"{pkg.deb}.part"
    kept_bytes = part.read_bytes()  # what was written before ^C
    assert 2 * 65536 <= len(kept_bytes) < len(dbg_deb) and dbg_deb.startswith(kept_bytes)
    monkeypatch.setattr(fetching.Progress, "update", update)
    state.requests = []
    out, _ = fetch(pkg, tmp_path)
    assert out.read_bytes() == VMLINUX
    assert [r for _, r in state.requests] == [f"bytes={len(kept_bytes)}-"]


def test_a_server_that_ignores_range_restarts_cleanly(
    archive: tuple[Archive, str], dbg_deb: bytes, tmp_path: Path
) -> None:
    state, pkg = serve(archive, dbg_deb)
    state.ignore_range = True
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / f"{pkg.deb}.part").write_bytes(dbg_deb[:50_000])
    out, log = fetch(pkg, tmp_path)
    assert [r for _, r in state.requests] == ["bytes=50000-"]  # answered with all of it
    assert out.read_bytes() == VMLINUX
    assert "ignores Range: restarting" in log


def test_a_bad_sha256_is_a_clear_error_and_keeps_nothing(
    archive: tuple[Archive, str], dbg_deb: bytes, tmp_path: Path
) -> None:
    _, pkg = serve(archive, dbg_deb, sha256="0" * 64)
    with pytest.raises(SymbolsError, match=r"SHA256 mismatch .* deleted it"):
        fetch(pkg, tmp_path)
    assert kept(tmp_path) == ["dl"]


def test_a_corrupt_part_is_caught_and_the_next_run_starts_over(
    archive: tuple[Archive, str], dbg_deb: bytes, tmp_path: Path
) -> None:
    state, pkg = serve(archive, dbg_deb)
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / f"{pkg.deb}.part").write_bytes(b"\0" * 1000)
    with pytest.raises(SymbolsError, match="SHA256 mismatch"):
        fetch(pkg, tmp_path)
    assert kept(tmp_path) == ["dl"]
    state.requests = []
    out, _ = fetch(pkg, tmp_path)
    assert out.read_bytes() == VMLINUX
    assert state.requests[0][1] is None


def test_a_second_run_finds_the_vmlinux_and_asks_nobody(
    archive: tuple[Archive, str], dbg_deb: bytes, tmp_path: Path
) -> None:
    state, pkg = serve(archive, dbg_deb)
    first, _ = fetch(pkg, tmp_path)
    state.requests = []
    state.files.clear()  # the archive could not answer now
    second, log = fetch(pkg, tmp_path)
    assert second == first and second.read_bytes() == VMLINUX
    assert state.requests == [] and log == ""


def test_a_server_error_is_retried(
    archive: tuple[Archive, str], dbg_deb: bytes, tmp_path: Path
) -> None:
    state, pkg = serve(archive, dbg_deb)
    state.errors = [503, 502]
    out, _ = fetch(pkg, tmp_path)
    assert out.read_bytes() == VMLINUX
    assert [r for _, r in state.requests] == [None, None, None]


def test_a_missing_file_on_the_server_is_named(archive: tuple[Archive, str],
                                               tmp_path: Path) -> None:  # fmt: skip
    _, base = archive
    pkg = package(base, b"x" * 10)
    with pytest.raises(SymbolsError, match=r"HTTP 404"):
        fetch(pkg, tmp_path)


def test_a_newer_kernel_replaces_the_older_ones_files(
    archive: tuple[Archive, str], dbg_deb: bytes, tmp_path: Path
) -> None:
    _, pkg = serve(archive, dbg_deb)
    (tmp_path / "dl").mkdir()
    (tmp_path / "vmlinux-9.8.0-1-test").write_bytes(b"old")
    (tmp_path / "dl" / "linux-image-9.8.0-1-test-dbg_9.8.1-1_amd64.deb.part").write_bytes(b"o")
    fetch(pkg, tmp_path)
    assert kept(tmp_path) == ["dl", f"vmlinux-{KVER}"]


# --- the source ---------------------------------------------------------------


@pytest.fixture(scope="module")
def source_deb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    tmp = tmp_path_factory.mktemp("src")
    tree = {"Makefile": b"VERSION = 9\n", "lib/pci_iomap.c": b"int pci_iomap;\n"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for rel, data in tree.items():
            info = tarfile.TarInfo(f"linux-source-9.9/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    files = {
        "usr/src/linux-source-9.9.tar.xz": buf.getvalue(),
        "usr/src/linux-patch-9.9-rt.patch.xz": b"not kept\n",
    }
    return build_deb(tmp / "root", "linux-source-9.9", files, tmp / "src.deb")


def test_the_source_tree_is_unpacked_and_its_package_deleted(
    archive: tuple[Archive, str], source_deb: bytes, tmp_path: Path
) -> None:
    state, base = archive
    digest = hashlib.sha256(source_deb).hexdigest()
    name = f"linux-source-9.9_{VERSION}_all.deb"
    pkg = Package(
        "linux-source-9.9", VERSION, f"{base}/pool/src.deb", len(source_deb), digest, name
    )
    state.files["/pool/src.deb"] = source_deb
    src = symbols.fetch_source(pkg, KVER, tmp_path, log=io.StringIO(), retry_delay=0)
    assert src == tmp_path / "src"
    assert (src / "lib" / "pci_iomap.c").read_bytes() == b"int pci_iomap;\n"
    assert (src / symbols.SOURCE_STAMP).read_text() == f"linux-source-9.9 {VERSION} {KVER}\n"
    assert kept(tmp_path) == [
        "dl", "src", "src/.barmap-source", "src/Makefile", "src/lib", "src/lib/pci_iomap.c",
    ]  # fmt: skip
    state.requests = []
    assert symbols.fetch_source(pkg, KVER, tmp_path, log=io.StringIO()) == src
    assert state.requests == []


# --- the command and what the harness asks ----------------------------------


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache; the distro kernel flavor."""
    for name in ("BARMAP_CACHE", "BARMAP_KERNEL_FLAVOR", "BARMAP_KERNEL_SUITE", "BARMAP_SUITE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "cache"


def fetched_kernel(cache: Path) -> Path:
    kdir = paths.kernel_dir("bookworm", str(cache))
    kdir.mkdir(parents=True)
    (kdir / "kernel.env").write_text(f"KVER={KVER}\nVMLINUX=\n")
    return kdir


def test_without_a_kernel_it_says_run_make_kernel_first(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert symbols.main(["--cache", str(cache), "--suite", "bookworm"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "run make kernel first" in err
    assert symbols.symbols_vmlinux("bookworm", str(cache)) is None
    assert symbols.source_dir("bookworm", str(cache)) is None


def test_the_command_fetches_through_the_apt_answer_then_does_nothing(
    archive: tuple[Archive, str],
    dbg_deb: bytes,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kdir = fetched_kernel(cache)
    _, pkg = serve(archive, dbg_deb)
    asked: list[list[str]] = []

    def resolve(specs: list[str], suite: str | None, cache: str | None) -> list[Package]:
        asked.append(specs)
        return [pkg]

    monkeypatch.setattr(symbols, "resolve_packages", resolve)
    monkeypatch.setattr(symbols, "kernel_version", lambda suite, cache: VERSION)
    argv = ["--cache", str(cache), "--suite", "bookworm"]
    assert symbols.main(argv) == 0
    out, err = capsys.readouterr()
    vmlinux = kdir / "symbols" / f"vmlinux-{KVER}"
    assert out == f"{vmlinux}\n"
    assert asked == [[f"{DBG}={VERSION}"]]  # pinned to the cached kernel's version
    first = err.splitlines()[0]
    assert re.fullmatch(rf"{DBG}: 0\.\d MB to download, keeps vmlinux \(~0\.\d MB\)", first)
    assert symbols.symbols_vmlinux("bookworm", str(cache)) == vmlinux
    assert symbols.symbols_vmlinux("bookworm", str(cache), "debug") is None

    assert symbols.main(argv) == 0  # the second run
    out, err = capsys.readouterr()
    assert out == f"{vmlinux}\n" and err == ""
    assert len(asked) == 1


def test_source_dir_belongs_to_the_cached_kernel(cache: Path) -> None:
    kdir = fetched_kernel(cache)
    src = kdir / "symbols" / "src"
    src.mkdir(parents=True)
    (src / symbols.SOURCE_STAMP).write_text("linux-source-9.8 9.8.1-1 9.8.0-1-test\n")
    assert symbols.source_dir("bookworm", str(cache)) is None  # an older kernel's
    (src / symbols.SOURCE_STAMP).write_text(f"linux-source-9.9 {VERSION} {KVER}\n")
    assert symbols.source_dir("bookworm", str(cache)) == src


def test_the_debug_flavor_has_its_own_symbols(cache: Path) -> None:
    kdir = fetched_kernel(cache)
    build = kdir / "debug" / "build"
    (build / "source").parent.mkdir(parents=True)
    (kdir / "debug" / "src").mkdir()
    (build / "source").symlink_to(kdir / "debug" / "src")
    (kdir / "debug" / "kernel.env").write_text(f"KVER=9.9.0-barmap-debug\nKDIR={build}\n")
    assert symbols.symbols_vmlinux("bookworm", str(cache), "debug") is None
    (build / "vmlinux").write_bytes(b"\x7fELF")
    assert symbols.symbols_vmlinux("bookworm", str(cache), "debug") == build / "vmlinux"
    assert symbols.source_dir("bookworm", str(cache), "debug") == kdir / "debug" / "src"


# --- the pieces ---------------------------------------------------------------


def test_print_uris_lines_are_parsed() -> None:
    text = (
        "'http://archive.example/debian/pool/main/l/linux/"
        "linux-image-6.1.0-57-amd64-dbg_6.1.192-3_amd64.deb' "
        f"linux-image-6.1.0-57-amd64-dbg_6.1.192-3_amd64.deb 858555196 SHA256:{'ab' * 32}\n"
        "'http://archive.example/x/foo_1%3a2.0-1_all.deb' foo_1%3a2.0-1_all.deb 12 "
        f"SHA256:{'c' * 64}\n"
    )  # fmt: skip
    dbg, foo = symbols.parse_print_uris(text)
    assert (dbg.name, dbg.version, dbg.size, dbg.sha256) == (
        "linux-image-6.1.0-57-amd64-dbg", "6.1.192-3", 858555196, "ab" * 32,
    )  # fmt: skip
    assert dbg.uri.endswith("/linux-image-6.1.0-57-amd64-dbg_6.1.192-3_amd64.deb")
    assert (foo.name, foo.version, foo.deb) == ("foo", "1:2.0-1", "foo_1%3a2.0-1_all.deb")
    with pytest.raises(SymbolsError, match="no SHA256"):
        symbols.parse_print_uris("'http://a/b.deb' b_1_all.deb 3 MD5Sum:0123\n")


def test_the_kernel_version_comes_from_its_banner(tmp_path: Path) -> None:
    image = tmp_path / "vmlinux"
    image.write_bytes(
        b"\0" * 4096 + b"Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) (gcc-12"
        b" 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)\n\0"
        b"/build/reproducible-path/linux-6.1.192/debian/build/build_amd64_none_amd64\0"
    )
    assert symbols.banner_version(image, "6.1.0-57-amd64") == "6.1.192-3"
    assert symbols.banner_version(image, "6.1.0-58-amd64") is None
    assert symbols.banner_version(tmp_path / "none", "6.1.0-57-amd64") is None
    assert symbols.source_prefix(image) == "/build/reproducible-path/linux-6.1.192"
    assert symbols.series("6.12.43+deb13-amd64") == "6.12"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_on_a_pipe_is_a_line_every_two_seconds() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = fetching.Progress("pkg", 100_000_000, stream, clock=clock)
    for i in range(1, 101):  # 10 s at 10 MB/s, an update every 0.1 s
        clock.now = i / 10
        progress.update(i * 1_000_000)
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert 5 <= len(lines) <= 7
    assert lines[-1] == "pkg: 100% 100/100 MB 10.0 MB/s"
    assert "\r" not in stream.getvalue()


def test_progress_on_a_terminal_rewrites_one_line() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream, clock = Tty(), Clock()
    progress = fetching.Progress("pkg", 10_000_000, stream, clock=clock)
    for i in range(1, 11):
        clock.now = float(i)
        progress.update(i * 1_000_000)
    progress.finish()
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and text.count("\r") >= 10
    assert text.rstrip().endswith("pkg: 100% 10/10 MB 1.0 MB/s")


# --- the real archive ---------------------------------------------------------


def test_the_archive_names_the_cached_kernels_symbols() -> None:
    """The real --print-uris query on the cached kernel's apt state (nothing downloaded)."""
    try:
        kver = symbols.kernel_release()
    except symbols.NotFetched as exc:
        pytest.skip(f"no cached distro kernel to ask about: {exc}")
    opts_file = paths.kernel_dir() / "apt" / "apt-opts"
    if not opts_file.is_file():
        pytest.skip(f"no private apt state at {opts_file} (make kernel)")
    try:
        (pkg,) = symbols.query_packages([f"linux-image-{kver}-dbg"], opts_file.parent)
    except SymbolsError as exc:
        pytest.skip(f"the cached package lists do not name linux-image-{kver}-dbg: {exc}")
    assert pkg.name == f"linux-image-{kver}-dbg"
    assert pkg.uri.startswith(("http://", "https://")) and pkg.uri.endswith(".deb")
    assert pkg.size > 100_000_000 and len(pkg.sha256) == 64
    try:
        request = urllib.request.Request(pkg.uri, method="HEAD")
        with urllib.request.urlopen(request, timeout=15) as response:
            length = int(response.headers["Content-Length"])
    except (OSError, urllib.error.URLError) as exc:
        pytest.skip(f"the archive is not reachable ({exc}); the query gave {pkg.size} bytes")
    assert length == pkg.size
