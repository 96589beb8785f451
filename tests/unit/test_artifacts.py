"""Which QEMU, kernel and initramfs a run uses: argument, then environment, then layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from barmap.build import paths
from barmap.build.artifacts import find_artifacts, find_qemu, read_env_file
from barmap.config import MachineConfig
from barmap.errors import ConfigError

KNOBS = ("BARMAP_QEMU", "BARMAP_KENV", "BARMAP_KERNEL", "BARMAP_INITRD", "BARMAP_SUITE",
         "BARMAP_QEMU_SUITE", "BARMAP_KERNEL_SUITE")  # fmt: skip


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty environment and a cache holding a bookworm and a trixie kernel.env."""
    for name in KNOBS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BARMAP_CACHE", str(tmp_path / "cache"))
    for suite in ("bookworm", "trixie"):
        kenv = paths.kernel_env(suite)
        kenv.parent.mkdir(parents=True)
        kenv.write_text(f"# made by the test\nKVER={suite}-kver\nVMLINUZ=/boot/{suite}\n\n")
    return tmp_path / "cache"


def test_layout_when_nothing_is_said(cache: Path) -> None:
    art = find_artifacts()
    assert art.qemu == cache / "qemu/bookworm/build/qemu-system-x86_64"
    assert art.kernel == Path("/boot/bookworm") and art.kernel_release == "bookworm-kver"
    assert art.initrd == paths.REPO_ROOT / "build/bookworm/initramfs.cpio"


def test_environment_beats_layout(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BARMAP_QEMU", "/env/qemu")
    monkeypatch.setenv("BARMAP_KENV", str(paths.kernel_env("trixie")))
    monkeypatch.setenv("BARMAP_INITRD", "/env/initrd")
    art = find_artifacts()
    assert (art.qemu, art.kernel, art.initrd) == (
        Path("/env/qemu"), Path("/boot/trixie"), Path("/env/initrd")
    )  # fmt: skip
    monkeypatch.setenv("BARMAP_KERNEL", "/env/bzImage")  # a user's own kernel beats kernel.env
    assert find_artifacts().kernel == Path("/env/bzImage")


def test_arguments_beat_environment(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BARMAP_QEMU", "BARMAP_KERNEL", "BARMAP_INITRD"):
        monkeypatch.setenv(name, f"/env/{name}")
    art = find_artifacts(None, "/arg/qemu", "/arg/kernel", "/arg/initrd")
    assert (art.qemu, art.kernel, art.initrd) == (
        Path("/arg/qemu"), Path("/arg/kernel"), Path("/arg/initrd")
    )  # fmt: skip
    assert find_qemu("/arg/qemu") == Path("/arg/qemu")


def test_an_explicit_suite_beats_makes_environment(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """make exports BARMAP_KENV/BARMAP_INITRD for its own suite; --suite trixie means trixie."""
    monkeypatch.setenv("BARMAP_KENV", str(paths.kernel_env("bookworm")))
    monkeypatch.setenv("BARMAP_INITRD", "/make/bookworm/initrd")
    art = find_artifacts("trixie")
    assert art.kernel_release == "trixie-kver"
    assert art.initrd == paths.REPO_ROOT / "build/trixie/initramfs.cpio"


def test_no_kernel_env_points_at_the_missing_file(cache: Path) -> None:
    paths.kernel_env("trixie").unlink()
    art = find_artifacts("trixie")
    assert art.kernel == paths.kernel_env("trixie") and art.kernel_release == ""
    with pytest.raises(ConfigError, match=r"QEMU binary not found at .*: run `make qemu`"):
        art.check()


def test_check_names_the_first_missing_piece_and_its_target(tmp_path: Path) -> None:
    (tmp_path / "qemu").write_bytes(b"")
    art = find_artifacts(None, tmp_path / "qemu", tmp_path / "vmlinuz", tmp_path / "initrd")
    with pytest.raises(ConfigError) as info:
        art.check()
    assert str(info.value) == f"guest kernel not found at {tmp_path / 'vmlinuz'}: run `make kernel`"
    (tmp_path / "vmlinuz").write_bytes(b"")
    (tmp_path / "initrd").write_bytes(b"")
    art.check()


def test_read_env_file(tmp_path: Path) -> None:
    f = tmp_path / "kernel.env"
    f.write_text("# comment=no\nKVER=6.1.0-1-amd64\n  MODDIR = /m \nnot a pair\nEMPTY=\n")
    assert read_env_file(f) == {"KVER": "6.1.0-1-amd64", "MODDIR": "/m", "EMPTY": ""}


def test_boot_picks_the_pvh_vmlinux_or_the_bzimage(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BARMAP_BOOT", raising=False)
    vmlinux = tmp_path / "vmlinux"
    vmlinux.write_bytes(b"\x7fELF" + b"\0" * 60)
    kenv = paths.kernel_env("bookworm")
    kenv.write_text(kenv.read_text() + f"VMLINUX={vmlinux}\n")
    assert (find_artifacts().kernel, find_artifacts().boot) == (vmlinux, "pvh")
    assert find_artifacts(boot="pvh").kernel == vmlinux
    assert find_artifacts(boot="bzimage").kernel == Path("/boot/bookworm")
    monkeypatch.setenv("BARMAP_BOOT", "bzimage")
    assert find_artifacts().kernel == Path("/boot/bookworm")
    # a kernel without PVH (VMLINUX empty): auto falls back, pvh says why it cannot
    kenv.write_text(kenv.read_text().replace(f"VMLINUX={vmlinux}", "VMLINUX="))
    assert find_artifacts(boot="auto").kernel == Path("/boot/bookworm")
    with pytest.raises(ConfigError, match="no PVH vmlinux"):
        find_artifacts(boot="pvh")
    with pytest.raises(ConfigError, match="boot must be one of"):
        find_artifacts(boot="uefi")


def test_a_users_own_kernel_boots_as_it_is(cache: Path, tmp_path: Path) -> None:
    own = tmp_path / "bzImage"
    own.write_bytes(b"MZ" + b"\0" * 62)
    art = find_artifacts(kernel=own, boot="pvh")
    assert (art.kernel, art.boot) == (own, "bzimage")


def test_the_kernels_own_boot_parameters_reach_the_command_line(cache: Path) -> None:
    """kernel.env's APPEND= (the debug kernel's acpi=noirq) is on the command line, before
    the user's append (which wins), and not for another kernel."""
    from barmap.qemu.cmdline import kernel_append

    kenv = paths.kernel_env("bookworm")
    kenv.write_text(kenv.read_text() + "APPEND=acpi=noirq foo=1\n")
    art = find_artifacts()
    assert art.kernel_args == ("acpi=noirq", "foo=1")
    line = kernel_append(MachineConfig.for_artifacts(art, append=("foo=2",)), "tcg").split()
    assert line.index("acpi=noirq") < line.index("foo=1") < line.index("foo=2")
    assert find_artifacts(kernel="/my/bzImage").kernel_args == ()
    # the same image named by path (as the CLI's --kernel) is still the kernel.env's
    assert find_artifacts(kernel="/boot/bookworm").kernel_args == ("acpi=noirq", "foo=1")
    # and so is its vmlinux (BTF, symbols for `barmap debug`): not for another kernel
    kenv.write_text(kenv.read_text() + "VMLINUX=/boot/bookworm-elf\n")
    assert find_artifacts(boot="bzimage").vmlinux == "/boot/bookworm-elf"
    assert find_artifacts(kernel="/my/bzImage").vmlinux == ""
    assert "APPEND" not in paths.read_env_file(paths.kernel_env("trixie"))
    assert "acpi=noirq" not in kernel_append(
        MachineConfig.for_artifacts(find_artifacts("trixie")), "tcg"
    )


def test_kernel_env_values_read_as_the_shell_reads_them(cache: Path) -> None:
    """make sources kernel.env with the shell; the harness must read the same values."""
    import subprocess

    kenv = paths.kernel_env("bookworm")
    kenv.write_text(kenv.read_text() + 'APPEND="acpi=noirq foo=1"\nVMLINUX=\n')
    shell = subprocess.run(["bash", "-c", f'. "{kenv}" && printf %s "$APPEND"'],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert paths.read_env_file(kenv)["APPEND"] == shell == "acpi=noirq foo=1"
    assert paths.read_env_file(kenv)["VMLINUX"] == ""
    assert find_artifacts().kernel_args == ("acpi=noirq", "foo=1")
