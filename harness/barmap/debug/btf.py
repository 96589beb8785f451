"""Struct layouts from a kernel's BTF: what gdb needs to find a module as it loads.

Debian's kernels carry BTF (``CONFIG_DEBUG_INFO_BTF``), the compact type
information behind ``/sys/kernel/btf/vmlinux``, in the ``.BTF`` section of the
ELF ``vmlinux``.  It describes every type of the kernel, including the ones a
module's DWARF does not (``struct module_sect_attrs`` is private to
kernel/module/sysfs.c), so it gives member offsets for exactly the kernel that
boots, 6.1 or 6.12, without the 855 MB ``-dbg`` package::

    btf = Btf.from_elf(Path("vmlinux"))
    btf.offsetof("module_sect_attr", "battr.attr.name"), btf.sizeof("module_sect_attr")

Only what offsets and sizes need is decoded (the format:
Documentation/bpf/btf.rst).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from barmap.debug.elf import ElfError, section_data

MAGIC = 0xEB9F

# kinds (include/uapi/linux/btf.h)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
# bytes that follow the common 12-byte header: fixed, or per vlen entry
_FIXED = {INT: 4, ARRAY: 12, VAR: 4, DECL_TAG: 4}
_PER_ENTRY = {STRUCT: 12, UNION: 12, ENUM: 8, FUNC_PROTO: 8, DATASEC: 12, ENUM64: 12}
_MODIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)


class BtfError(Exception):
    pass


@dataclass(frozen=True)
class Member:
    name: str
    type_id: int
    bit_offset: int


@dataclass(frozen=True)
class BtfType:
    kind: int
    name: str
    size_or_type: int  # the size of a struct/union/int, the referenced type of a ptr/modifier
    members: tuple[Member, ...] = ()


class Btf:
    def __init__(self, data: bytes) -> None:
        if len(data) < 24:
            raise BtfError("BTF data too short")
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", data)
        if magic != MAGIC:
            raise BtfError(f"not BTF (magic {magic:#x})")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        self._strings = data[hdr_len + str_off : hdr_len + str_off + str_len]
        self.types: list[BtfType] = [BtfType(0, "void", 0)]  # id 0 is void
        self._by_name: dict[tuple[int, str], int] = {}
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        while pos < end:
            name_off, info, size_or_type = struct.unpack_from("<III", data, pos)
            pos += 12
            kind, vlen, kind_flag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
            members: tuple[Member, ...] = ()
            if kind in (STRUCT, UNION):
                out = []
                for i in range(vlen):
                    m_name, m_type, m_off = struct.unpack_from("<III", data, pos + 12 * i)
                    bit = m_off & 0xFFFFFF if kind_flag else m_off
                    out.append(Member(self._str(m_name), m_type, bit))
                members = tuple(out)
            pos += _FIXED.get(kind, 0) + _PER_ENTRY.get(kind, 0) * vlen
            t = BtfType(kind, self._str(name_off), size_or_type, members)
            self._by_name.setdefault((kind, t.name), len(self.types))
            self.types.append(t)

    @classmethod
    def from_elf(cls, path: Path) -> Btf:
        """The ``.BTF`` section of an ELF file (a kernel's ``vmlinux``)."""
        try:
            return cls(section_data(path, ".BTF"))
        except ElfError as exc:
            raise BtfError(str(exc)) from None

    def _str(self, off: int) -> str:
        end = self._strings.find(b"\0", off)
        return self._strings[off:end].decode("utf-8", "replace")

    def _struct(self, name: str) -> BtfType:
        for kind in (STRUCT, UNION):
            tid = self._by_name.get((kind, name))
            if tid is not None:
                return self.types[tid]
        raise BtfError(f"no struct {name} in this kernel's BTF")

    def _resolve(self, type_id: int) -> BtfType:
        t = self.types[type_id]
        while t.kind in _MODIFIERS:
            t = self.types[t.size_or_type]
        return t

    def _find(self, t: BtfType, name: str) -> tuple[int, BtfType] | None:
        """(bit offset, type) of member ``name``, looking into anonymous members too."""
        for m in t.members:
            mt = self._resolve(m.type_id)
            if m.name == name:
                return m.bit_offset, mt
            if not m.name and mt.kind in (STRUCT, UNION):
                inner = self._find(mt, name)
                if inner is not None:
                    return m.bit_offset + inner[0], inner[1]
        return None

    def offsetof(self, struct_name: str, path: str) -> int:
        """Byte offset of member ``path`` (``a.b.c``, through nested structs) in the struct."""
        t, bits = self._struct(struct_name), 0
        for part in path.split("."):
            if t.kind not in (STRUCT, UNION):
                raise BtfError(f"{struct_name}.{path}: {part!r} is not in a struct")
            found = self._find(t, part)
            if found is None:
                raise BtfError(f"struct {struct_name} has no member {path}")
            bits += found[0]
            t = found[1]
        if bits % 8:
            raise BtfError(f"{struct_name}.{path} is a bit field")
        return bits // 8

    def sizeof(self, struct_name: str) -> int:
        return self._struct(struct_name).size_or_type
