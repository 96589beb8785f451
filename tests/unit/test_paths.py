"""One truth for every path and default: barmap.build.paths, and make and the scripts reading it."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from barmap.build import paths

ROOT = paths.REPO_ROOT
PATHS_PY = ROOT / "harness" / "barmap" / "build" / "paths.py"
ENV_KNOBS = (
    "BARMAP_CACHE",
    "BARMAP_SUITE",
    "BARMAP_QEMU_SUITE",
    "BARMAP_KERNEL_SUITE",
    "BARMAP_QEMU_FLAVOR",
    "BARMAP_KERNEL_FLAVOR",
    "BARMAP_TIMEOUT_SCALE",
    "BARMAP_GUEST_ARCH",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_KNOBS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


# the Makefile's knobs of the same meaning (a CI job exports QEMU_SUITE, say)
MAKE_KNOBS = ("QEMU_SUITE", "KERNEL_SUITE", "QEMU_FLAVOR", "KERNEL_FLAVOR", "KENV", "KDIR",
              "GUEST_ARCH", "MAKEFLAGS", "MAKELEVEL")  # fmt: skip
# (MAKEFLAGS: a `make test VAR=...` above would hand its VAR to the make a test runs)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KNOBS + MAKE_KNOBS}
    return {**env, **extra}


def test_defaults(tmp_path: Path) -> None:
    cache = tmp_path / "home" / ".cache" / "barmap"
    assert paths.cache_dir() == cache
    assert paths.qemu_binary() == cache / "qemu" / "bookworm" / "build" / "qemu-system-x86_64"
    assert paths.kernel_env() == cache / "kernel" / "bookworm" / "kernel.env"
    assert paths.initrd() == ROOT / "build" / "bookworm" / "initramfs.cpio"
    assert paths.DEFAULT_SUITE in paths.SUITES


def test_environment_moves_the_cache_and_picks_suites(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BARMAP_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("BARMAP_SUITE", "trixie")
    assert paths.qemu_binary() == tmp_path / "c/qemu/trixie/build/qemu-system-x86_64"
    assert paths.kernel_env() == tmp_path / "c/kernel/trixie/kernel.env"
    monkeypatch.setenv("BARMAP_KERNEL_SUITE", "bookworm")  # the specific knob wins
    assert paths.kernel_suite() == "bookworm" and paths.qemu_suite() == "trixie"
    assert paths.kernel_env("trixie", cache=str(tmp_path / "d")) == (
        tmp_path / "d/kernel/trixie/kernel.env"
    )  # and arguments win over both


def test_empty_environment_values_mean_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BARMAP_CACHE", "")
    monkeypatch.setenv("BARMAP_QEMU_SUITE", " ")
    assert paths.cache_dir() == Path.home() / ".cache" / "barmap"
    assert paths.qemu_suite() == paths.DEFAULT_SUITE


def test_a_relative_cache_is_made_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BARMAP_CACHE", "rel/cache")
    assert paths.cache_dir() == Path.cwd() / "rel" / "cache"


def test_firmware_file_searches_the_dirs_in_order() -> None:
    found = paths.firmware_file("bios-256k.bin")
    if found is None:
        pytest.skip("no SeaBIOS installed")
    assert str(found.parent) in paths.FIRMWARE_DIRS
    assert paths.firmware_file("no-such-firmware.bin") is None


def _shell_values(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        key, _, value = line.partition("=")
        out[key] = shlex.split(value)[0] if value else ""
    return out


def test_the_script_runs_without_the_venv(tmp_path: Path) -> None:
    """/usr/bin/python3, no barmap package on the path: what make and the scripts run."""
    env = _env(BARMAP_CACHE=str(tmp_path / "c"), PYTHONPATH="")
    out = subprocess.run(
        ["/usr/bin/python3", str(PATHS_PY), "--shell", "--kernel-suite", "trixie"],
        env=env, capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout  # fmt: skip
    values = _shell_values(out)
    assert values == paths.layout(cache=str(tmp_path / "c"), kernel="trixie")
    assert values["KENV"] == str(tmp_path / "c/kernel/trixie/kernel.env")
    assert values["QEMU_SUITE"] == "bookworm"


def test_make_words_and_one_value(tmp_path: Path) -> None:
    out = subprocess.run(
        ["python3", str(PATHS_PY), "--make", "--cache", str(tmp_path), "--qemu-suite", "trixie"],
        env=_env(), capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    words = dict(w.split(":=", 1) for w in out)
    assert words["QEMU_BIN"] == str(tmp_path / "qemu/trixie/build/qemu-system-x86_64")
    assert "FIRMWARE_DIRS" not in words  # lists are for the shell only
    one = subprocess.run(["python3", str(PATHS_PY), "qemu", "--cache", str(tmp_path)],
                         env=_env(), capture_output=True, text=True, check=True)  # fmt: skip
    assert one.stdout.strip() == str(tmp_path / "qemu/bookworm/build/qemu-system-x86_64")


def test_make_refuses_a_cache_path_with_spaces(tmp_path: Path) -> None:
    proc = subprocess.run(["python3", str(PATHS_PY), "--make", "--cache", str(tmp_path / "a b")],
                          env=_env(), capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 1 and "spaces" in proc.stderr and proc.stdout == ""


def test_paths_sh_gives_the_same_values(tmp_path: Path) -> None:
    script = f". {ROOT}/scripts/paths.sh --qemu-suite trixie; set -- x y; " + (
        'echo "$BARMAP_CACHE|$QEMU_BIN|$KENV|$CHECKPATCH_DIR|$FIRMWARE_DIRS"'
    )
    out = subprocess.run(["bash", "-euc", script], env=_env(BARMAP_CACHE=str(tmp_path)),
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    want = paths.layout(cache=str(tmp_path), qemu="trixie")
    keys = ("BARMAP_CACHE", "QEMU_BIN", "KENV", "CHECKPATCH_DIR", "FIRMWARE_DIRS")
    assert out.strip().split("|") == [want[k] for k in keys]


def test_paths_sh_fails_the_sourcing_script_on_bad_arguments() -> None:
    proc = subprocess.run(["bash", "-ec", f". {ROOT}/scripts/paths.sh --bogus; echo reached"],
                          env=_env(), capture_output=True, text=True)  # fmt: skip
    assert proc.returncode != 0 and "reached" not in proc.stdout


@pytest.mark.parametrize("knobs", [(), ("BARMAP_CACHE=/x/c", "QEMU_SUITE=trixie")])
def test_the_makefile_takes_its_paths_from_paths_py(knobs: tuple[str, ...]) -> None:
    show = "show: ; @echo '$(BARMAP_CACHE)|$(QEMU_BIN)|$(KENV)|$(INITRD)|$(BARMAP_QEMU)'"
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "--eval", show, "show", *knobs],
                         env=_env(), capture_output=True, text=True, check=True).stdout  # fmt: skip
    args = dict(k.split("=", 1) for k in knobs)
    want = paths.layout(cache=args.get("BARMAP_CACHE"), qemu=args.get("QEMU_SUITE"))
    assert out.strip().split("|") == [
        want["BARMAP_CACHE"], want["QEMU_BIN"], want["KENV"], want["INITRD"], want["QEMU_BIN"]
    ]  # fmt: skip


def test_the_driver_makefile_finds_kernel_env_through_paths_py(tmp_path: Path) -> None:
    show = "show: ; @echo '$(KENV)'"
    out = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "guest-driver"), "--eval", show, "show",
         "KERNEL=trixie", f"BARMAP_CACHE={tmp_path}"],
        env=_env(), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out.strip() == str(tmp_path / "kernel/trixie/kernel.env")


# Where defaults could be spelled again: code and build files, not documentation.
_SOURCES = ("harness", "scripts", "tests", "Makefile", "guest-driver/Makefile", ".ci", "images")


def _source_files() -> list[Path]:
    files: list[Path] = []
    for name in _SOURCES:
        top = ROOT / name
        candidates = [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
        files += [p for p in candidates if "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return files


@pytest.mark.parametrize(
    "needle", [".cache/barmap", '".cache" / "barmap"', "/usr/share/seabios", "/usr/share/qemu"]
)
def test_each_default_is_spelled_in_one_place(needle: str) -> None:
    here = Path(__file__).resolve()
    spelled = [
        str(p.relative_to(ROOT))
        for p in _source_files()
        if p.resolve() != here and needle in p.read_text(errors="replace")
    ]
    assert spelled in ([], ["harness/barmap/build/paths.py"]), spelled


def test_flavors_have_their_own_build_directories(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BARMAP_CACHE", str(tmp_path))
    assert (
        paths.qemu_binary(flavor="asan") == tmp_path / "qemu/bookworm/build-asan/qemu-system-x86_64"
    )
    assert (
        paths.qemu_binary(flavor="fuzz") == tmp_path / "qemu/bookworm/build-fuzz/qemu-fuzz-x86_64"
    )
    monkeypatch.setenv("BARMAP_KERNEL_FLAVOR", "debug")
    assert paths.kernel_env() == tmp_path / "kernel/bookworm/debug/kernel.env"
    assert paths.initrd() == ROOT / "build" / "bookworm-debug" / "initramfs.cpio"
    assert paths.kernel_env(flavor="distro") == tmp_path / "kernel/bookworm/kernel.env"


def test_an_unknown_flavor_is_one_clear_line() -> None:
    with pytest.raises(ValueError, match="not one of plain, asan, fuzz"):
        paths.qemu_binary(flavor="tsan")
    run = subprocess.run(
        [sys.executable, str(PATHS_PY), "--make", "--kernel-flavor", "kasan"],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert run.returncode == 2
    assert run.stderr.strip() == "paths.py: kernel flavor 'kasan' is not one of distro, debug"


def test_timeout_scale_follows_the_kernel_flavor(monkeypatch: pytest.MonkeyPatch) -> None:
    assert paths.timeout_scale() == 1.0
    monkeypatch.setenv("BARMAP_KERNEL_FLAVOR", "debug")
    assert paths.timeout_scale() == paths.KERNEL_FLAVOR_SLOWDOWN["debug"] > 1
    monkeypatch.setenv("BARMAP_TIMEOUT_SCALE", "2.5")
    assert paths.timeout_scale() == 2.5
    monkeypatch.setenv("BARMAP_TIMEOUT_SCALE", "fast")
    with pytest.raises(ValueError, match="not a positive number"):
        paths.timeout_scale()
