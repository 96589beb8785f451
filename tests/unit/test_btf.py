"""barmap.debug.btf: struct member offsets from a kernel's BTF."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from barmap.debug import btf
from barmap.debug.btf import Btf, BtfError


def _blob(types: list[bytes], strings: list[str]) -> bytes:
    strtab = b"\0" + b"".join(s.encode() + b"\0" for s in strings)
    body = b"".join(types)
    header = struct.pack("<HBBIIIII", btf.MAGIC, 1, 0, 24, 0, len(body), len(body), len(strtab))
    return header + body + strtab


def _name(strings: list[str], name: str) -> int:
    """Offset of ``name`` in the string table _blob makes."""
    off = 1
    for s in strings:
        if s == name:
            return off
        off += len(s) + 1
    raise KeyError(name)


def _type(kind: int, name: int, vlen: int, size_or_type: int, kind_flag: int = 0) -> bytes:
    return struct.pack("<III", name, (kind_flag << 31) | (kind << 24) | vlen, size_or_type)


def _members(*ms: tuple[int, int, int]) -> bytes:
    return b"".join(struct.pack("<III", *m) for m in ms)


STRINGS = ["int", "inner", "a", "b", "x", "y", "outer", "first", "last", "inner_t", "holder",
           "t", "flags", "bits"]  # fmt: skip


@pytest.fixture
def sample() -> Btf:
    n = lambda s: _name(STRINGS, s)  # noqa: E731
    types = [
        _type(btf.INT, n("int"), 0, 4) + struct.pack("<I", 32),  # 1
        _type(btf.STRUCT, n("inner"), 2, 8) + _members((n("a"), 1, 0), (n("b"), 1, 32)),  # 2
        _type(btf.UNION, 0, 2, 8) + _members((n("x"), 1, 0), (n("y"), 2, 0)),  # 3: anonymous
        _type(btf.STRUCT, n("outer"), 3, 24)
        + _members((n("first"), 1, 0), (0, 3, 64), (n("last"), 1, 160)),  # 4
        _type(btf.TYPEDEF, n("inner_t"), 0, 2),  # 5
        _type(btf.CONST, 0, 0, 5),  # 6: const inner_t
        _type(btf.STRUCT, n("holder"), 1, 16) + _members((n("t"), 6, 64)),  # 7
        # kind_flag: offset bits 0-23 are the bit offset, 24-31 the bit field's size
        _type(btf.STRUCT, n("flags"), 1, 4, kind_flag=1) + _members((n("bits"), 1, 3 << 24 | 5)),
    ]
    return Btf(_blob(types, STRINGS))


def test_offsets_through_nested_anonymous_and_typedef_members(sample: Btf) -> None:
    assert sample.offsetof("outer", "first") == 0
    assert sample.offsetof("outer", "x") == 8  # inside the anonymous union
    assert sample.offsetof("outer", "y.b") == 12
    assert sample.offsetof("outer", "last") == 20
    assert sample.offsetof("holder", "t.b") == 12  # through const and the typedef
    assert sample.sizeof("outer") == 24


def test_what_is_not_there_is_an_error(sample: Btf) -> None:
    with pytest.raises(BtfError, match="no struct missing"):
        sample.offsetof("missing", "a")
    with pytest.raises(BtfError, match=r"has no member y\.zz"):
        sample.offsetof("outer", "y.zz")
    with pytest.raises(BtfError, match="bit field"):
        sample.offsetof("flags", "bits")
    with pytest.raises(BtfError, match="not BTF"):
        Btf(b"\0" * 32)


def _kernel_vmlinux() -> Path | None:
    from barmap.build.artifacts import read_env_file
    from barmap.build.paths import kernel_env

    env = kernel_env()
    vmlinux = read_env_file(env).get("VMLINUX", "") if env.is_file() else ""
    return Path(vmlinux) if vmlinux and Path(vmlinux).is_file() else None


def test_the_cached_kernel_agrees_with_the_module_dwarf() -> None:
    """struct module's layout from the kernel's BTF equals gdb's reading of barmap.ko's DWARF."""
    vmlinux = _kernel_vmlinux()
    from barmap.build.paths import build_dir

    ko = build_dir() / "barmap.ko"  # built for the same suite as kernel_env()
    if vmlinux is None or not ko.is_file() or shutil.which("gdb") is None:
        pytest.skip("needs the cached kernel (make kernel), the built driver (make driver), gdb")
    kernel = Btf.from_elf(vmlinux)
    for member in ("name", "sect_attrs", "init"):
        out = subprocess.run(
            ["gdb", "-batch", "-nx", "-ex", f"print (long)&((struct module *)0)->{member}",
             str(ko)], capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert int(out.split("=")[-1]) == kernel.offsetof("module", member), member
