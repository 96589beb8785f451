"""The Python view of the ABI headers equals the C compiler's view of the same headers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from barmap import abi


def _c_values(tmp_path: Path, names: list[str]) -> dict[str, int]:
    src = tmp_path / "dump.c"
    body = "\n".join(f'\tprintf("%s %llu\\n", "{n}", (unsigned long long)({n}));' for n in names)
    src.write_text(
        "#include <stdio.h>\n#include <linux/types.h>\n"
        '#include "barmap_regs.h"\n#include "barmap_uapi.h"\n'
        f"int main(void)\n{{\n{body}\n\treturn 0;\n}}\n"
    )
    exe = tmp_path / "dump"
    subprocess.run(["cc", "-Wall", "-Werror", "-I", str(abi.INCLUDE_DIR), "-o", str(exe),
                    str(src)], check=True)  # fmt: skip
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {name: int(value) for name, value in (line.split() for line in out.splitlines())}


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_python_and_c_agree(tmp_path: Path) -> None:
    py = {**abi.regs(), **abi.uapi()}
    assert len(py) > 60
    c = _c_values(tmp_path, sorted(py))
    mismatched = {n: (py[n], c[n]) for n in py if py[n] != c[n]}
    assert not mismatched


def test_every_define_is_understood() -> None:
    """A define the parser skips would silently vanish from the harness's view."""
    for header, table in ((abi.REGS_H, abi.regs()), (abi.UAPI_H, abi.uapi())):
        defined = {
            line.split()[1]
            for line in abi._logical_lines(header.read_text())
            if line.startswith("#define BARMAP_") and "(" not in line.split()[1]
        }
        guards = {"BARMAP_REGS_H"}
        assert defined - guards - set(table) == set()


def test_register_offsets_are_distinct_and_aligned() -> None:
    offsets = {
        n: v
        for n, v in abi.regs().items()
        if n.startswith("BARMAP_REG_") and n not in ("BARMAP_REG_BAR", "BARMAP_REG_BAR_SIZE")
    }
    assert len(set(offsets.values())) == len(offsets)
    assert all(v % 4 == 0 and v < abi.reg("REG_BAR_SIZE") for v in offsets.values())


def test_bad_expression_is_refused() -> None:
    with pytest.raises(abi.AbiError):
        abi._evaluate("__import__('os')", {})
    with pytest.raises(abi.AbiError):
        abi._evaluate("BARMAP_UNKNOWN + 1", {})
