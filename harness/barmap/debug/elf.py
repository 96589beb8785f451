"""What the debugger setup reads from ELF files: section names and contents, symbols.

64-bit little-endian ELF only (x86_64 kernels and modules), standard library only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

SHT_SYMTAB = 2
STT_FUNC = 2


class ElfError(Exception):
    pass


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int


@dataclass(frozen=True)
class Symbol:
    name: str
    section: str  # "" for an undefined or absolute symbol
    is_function: bool


def sections(path: Path) -> list[Section]:
    """Every section header of ``path``, in order."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or len(head) < 64 or head[4] != 2 or head[5] != 1:
            raise ElfError(f"{path} is not a 64-bit little-endian ELF file")
        (shoff,) = struct.unpack_from("<Q", head, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", head, 0x3A)
        f.seek(shoff)
        table = f.read(shentsize * shnum)
        if len(table) < shentsize * shnum or shstrndx >= shnum:
            raise ElfError(f"{path}: truncated section table")
        raw = [struct.unpack_from("<IIQQQQI", table, i * shentsize) for i in range(shnum)]
        f.seek(raw[shstrndx][4])
        names = f.read(raw[shstrndx][5])
    return [
        Section(_cstr(names, name), typ, flags, off, size, link)
        for name, typ, flags, _addr, off, size, link in raw
    ]


def section_data(path: Path, name: str) -> bytes:
    """The contents of section ``name``."""
    for sec in sections(path):
        if sec.name == name:
            with open(path, "rb") as f:
                f.seek(sec.offset)
                return f.read(sec.size)
    raise ElfError(f"{path} has no {name} section")


def symbols(path: Path) -> list[Symbol]:
    """The symbol table (``.symtab``), each symbol with the name of its section."""
    secs = sections(path)
    out: list[Symbol] = []
    with open(path, "rb") as f:
        for sec in secs:
            if sec.type != SHT_SYMTAB:
                continue
            f.seek(sec.offset)
            table = f.read(sec.size)
            strtab = secs[sec.link]
            f.seek(strtab.offset)
            names = f.read(strtab.size)
            for i in range(sec.size // 24):
                name, info, _other, shndx, _value, _size = struct.unpack_from(
                    "<IBBHQQ", table, i * 24
                )
                where = secs[shndx].name if 0 < shndx < len(secs) else ""
                out.append(Symbol(_cstr(names, name), where, info & 0xF == STT_FUNC))
    return out


def _cstr(blob: bytes, off: int) -> str:
    end = blob.find(b"\0", off)
    return blob[off : end if end >= 0 else len(blob)].decode("utf-8", "replace")
