"""The device and driver ABI, read from the C headers that are its single source of truth.

``include/barmap_regs.h`` (device registers) and ``include/barmap_uapi.h``
(driver ioctls, mmap ids) are parsed for ``#define BARMAP_NAME <expr>`` lines;
the ioctl numbers are computed from their ``_IO*`` arguments and the struct
layouts declared here, which a test checks against the header's field lists.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

INCLUDE_DIR = Path(__file__).resolve().parents[2] / "include"
REGS_H = INCLUDE_DIR / "barmap_regs.h"
UAPI_H = INCLUDE_DIR / "barmap_uapi.h"

_DEFINE = re.compile(r"^#define\s+(BARMAP_\w+)\s+(.+?)\s*$")
_COMMENT = re.compile(r"/\*.*?\*/")
_INT_SUFFIX = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+)[uU]?[lL]{0,2}\b")
_SAFE_EXPR = re.compile(r"^[\sA-Za-z0-9_()<>|&+\-~*']+$")

# struct sizes for the _IO* macros (x86_64, all fields naturally aligned)
_STRUCT_SIZES = {
    "struct barmap_info": 4 * 8 + 6 * 4,
    "struct barmap_alloc": 2 * 8 + 2 * 4,
    "struct barmap_dma": 3 * 8 + 4 * 4,
    "struct barmap_sync": 2 * 4,
    "struct barmap_export": 2 * 4,
    "struct barmap_pte": 3 * 8 + 4 * 4,
    "__u32": 4,
    "__u64": 8,
}
_IOC_DIR = {"_IO": 0, "_IOW": 1, "_IOR": 2, "_IOWR": 3}


class AbiError(ValueError):
    """A header line the parser cannot evaluate."""


def _logical_lines(text: str) -> list[str]:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return text.replace("\\\n", " ").splitlines()


def _ioc(direction: int, magic: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (magic << 8) | nr


def _evaluate(expr: str, known: dict[str, int]) -> int:
    expr = _COMMENT.sub("", expr).strip()
    call = re.match(r"^(_IO|_IOR|_IOW|_IOWR)\((.*)\)$", expr)
    if call:
        args = [a.strip() for a in call.group(2).split(",")]
        magic = _evaluate(args[0], known)
        nr = _evaluate(args[1], known)
        size = _STRUCT_SIZES[args[2]] if len(args) > 2 else 0
        return _ioc(_IOC_DIR[call.group(1)], magic, nr, size)
    if not _SAFE_EXPR.match(expr):
        raise AbiError(f"cannot evaluate {expr!r}")
    expr = re.sub(r"'(.)'", lambda m: str(ord(m.group(1))), expr)
    expr = _INT_SUFFIX.sub(lambda m: m.group(1), expr)
    names = set(re.findall(r"\b[A-Za-z_]\w*\b", expr))
    unknown = names - known.keys()
    if unknown:
        raise AbiError(f"unknown names {sorted(unknown)} in {expr!r}")
    value = eval(expr, {"__builtins__": {}}, dict(known))
    if not isinstance(value, int):
        raise AbiError(f"{expr!r} is not an integer")
    return value


def parse_header(path: Path, known: dict[str, int] | None = None) -> dict[str, int]:
    """Return every ``BARMAP_*`` integer define of ``path``, in order."""
    values: dict[str, int] = dict(known or {})
    out: dict[str, int] = {}
    for line in _logical_lines(path.read_text()):
        m = _DEFINE.match(line.strip())
        if not m or m.group(2).startswith('"'):
            continue
        try:
            value = _evaluate(m.group(2), values)
        except (AbiError, KeyError):
            continue
        # ~ on an unsigned C constant: keep the 32-bit view when it fits
        if value < 0:
            value &= 0xFFFFFFFF
        values[m.group(1)] = value
        out[m.group(1)] = value
    return out


@cache
def regs() -> dict[str, int]:
    """The device register map (``include/barmap_regs.h``)."""
    return parse_header(REGS_H)


@cache
def uapi() -> dict[str, int]:
    """The driver's userspace ABI (``include/barmap_uapi.h``)."""
    return parse_header(UAPI_H)


def reg(name: str) -> int:
    """One register-map constant, with or without its ``BARMAP_`` prefix."""
    table = regs()
    key = name if name.startswith("BARMAP_") else f"BARMAP_{name}"
    if key not in table:
        raise KeyError(f"{key} is not defined in {REGS_H}")
    return table[key]
