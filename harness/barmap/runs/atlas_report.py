"""The atlas as Markdown, as one self-contained HTML page, and as ``docs/atlas.md``.

Everything here is rendered from an atlas document (``barmap.runs.atlas.run``); the only
words of its own are the scenario groups, the legend and each row's "when to use it".
The mmap callback a row shows is cut from ``guest-driver/barmap.c``, found through the
driver's own strategy table.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

DRIVER_SOURCE = Path(__file__).resolve().parents[3] / "guest-driver" / "barmap.c"
EXCERPT_LINES = 24

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Reading, writing, the host and the device",
        ("readback", "host-view", "dma-read", "dma-write", "fork"),
    ),
    (
        "Debuggers and the kernel's own users of the pages (GUP)",
        (
            "ptrace",
            "proc-mem",
            "process-vm",
            "o-direct-read",
            "o-direct-write",
            "io-uring",
            "vmsplice",
        ),
    ),
    (
        "Changing the mapping",
        ("munmap-part", "mremap-move", "mremap-shrink", "mremap-grow", "mprotect"),
    ),
    ("When the device goes", ("unplug", "race-sysfs", "race-host", "rmmod")),
    ("Measured", ("huge", "cache-mode", "cache-wc", "bandwidth", "map-cost")),
)

LEGEND: tuple[tuple[str, str], ...] = (
    ("ok", "works, the bytes checked"),
    ("refused", "the kernel or driver says no, with an errno: a limit of the API"),
    ("revoked", "after removal the mapping faults (SIGBUS): nothing reaches the next device"),
    ("kept", "after removal the mapping still reads its memory, which an fd owns"),
    ("blocked", "removal waits until the user lets go"),
    ("wrong", "bytes wrong, or a mapping outlived its device: a hazard"),
    ("info", "a measurement"),
    ("n/a", "does not apply"),
    ("error", "the testbed could not run the cell"),
)

COLOURS = {
    "ok": "#c8e6c9",
    "refused": "#e0e0e0",
    "revoked": "#bbdefb",
    "kept": "#fff9c4",
    "blocked": "#ffe0b2",
    "wrong": "#ef9a9a",
    "info": "#f5f5f5",
    "n/a": "#ffffff",
    "error": "#ce93d8",
    "host": "#ce93d8",
}

WHEN: dict[str, str] = {
    "bar": "Device memory (a BAR) in any driver that can be unplugged: vfio-pci's way. "
    "Nothing is mapped until touched, removal revokes it, PMDs where the kernel can.",
    "bar-remap": "A BAR mapped whole in mmap(): simplest, every entry up front; no partial "
    "munmap (its PAT memtype covers the whole VMA).",
    "bar-iomap": "The same as bar-remap with the bounds checks done by the helper; it reads "
    "vm_pgoff as an offset into the region, so an id in the offset must be cleared.",
    "dma": "Memory the device reads and writes with the DMA API: always coherent, the "
    "allocator picks the attributes; what the seed question found working.",
    "reserved": "A memmap= or reserved-memory region with no struct pages, at fault time.",
    "reserved-remap": "The same region mapped in mmap(), as most out-of-tree drivers do.",
    "dma-wc": "A DMA buffer the CPU streams into (write-combined on hardware that can).",
    "dma-pages": "A DMA buffer of real pages whose ownership the driver hands back and forth "
    "(dma_sync_* through the SYNC ioctl).",
    "dma-noncontig": "A large DMA buffer that need not be contiguous (behind an IOMMU, one "
    "range of bus addresses).",
    "ram-remap": "The question's kmalloc()ed RAM by its PFN: works, but no struct page "
    "reaches user space (no GUP), and the device needs the streaming API.",
    "pages-insert": "Kernel pages mapped as pages: GUP, O_DIRECT and vmsplice work.",
    "pages-fault": "The same at fault time; the page goes back locked so removal can wait.",
    "vmalloc": "A virtually contiguous kernel buffer (a ring, a log) shared with user space.",
    "dmabuf": "Memory shared with other drivers and processes by fd: it outlives the "
    "device, and nothing revokes it.",
    "vfio": "The kernel's own answer for a whole device in user space (needs an IOMMU).",
    "resource2": "A BAR without any driver: sysfs maps it, as lspci-style tools do.",
}

_KERNEL_SOURCE = {
    "vfio": "drivers/vfio/pci/vfio_pci_core.c (vfio_pci_core_mmap, a fault handler)",
    "resource2": "drivers/pci/pci-sysfs.c (pci_mmap_resource_range, io_remap_pfn_range)",
}


def short(cell: dict[str, Any]) -> str:
    """A cell in a few characters, for the tables."""
    v = cell.get("verdict", "")
    if cell.get("scenario", "").startswith("race") and v in ("ok", "wrong", "kept"):
        m = re.search(r"(\d+) of (\d+)", cell.get("value", ""))
        if m:
            return f"{m.group(1)}/{m.group(2)}"
    if v == "refused":
        return cell.get("errno", "refused")
    if v == "revoked":
        return cell.get("signal", "revoked")
    if v == "info":
        value = cell.get("value", "")
        return value.split(":")[0] if cell.get("scenario") == "huge" else value
    return {"n/a": "-"}.get(v, v)


def _by(cells: Iterable[dict[str, Any]], suite: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["row"], c["scenario"]): c for c in cells if c["suite"] == suite}


def _suites(atlas: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per kernel suite (its driver guest's), in run order."""
    seen: dict[str, dict[str, Any]] = {}
    for k in atlas["kernels"]:
        seen.setdefault(k["suite"], k)
    return list(seen.values())


def matrix_markdown(atlas: dict[str, Any], suite: str) -> str:
    cells = _by(atlas["cells"], suite)
    rows = [r["row"] for r in atlas["rows"]]
    out = []
    for title, names in GROUPS:
        names = tuple(n for n in names if any(k[1] == n for k in cells))
        if not names:
            continue
        out.append(f"**{title}**\n")
        out.append("| row | " + " | ".join(names) + " |")
        out.append("| --- |" + " --- |" * len(names))
        for r in rows:
            vals = [short(cells[(r, n)]) if (r, n) in cells else "" for n in names]
            out.append(f"| `{r}` | " + " | ".join(vals) + " |")
        out.append("")
    return "\n".join(out)


def provenance(atlas: dict[str, Any]) -> str:
    parts = []
    for k in atlas["kernels"]:
        extra = " + intel-iommu (the vfio row)" if k.get("iommu") else ""
        parts.append(
            f"- {k['suite']}: kernel {k['kernel']}, {k['qemu']}, {k['machine']}{extra},"
            f" {k['accel']}, {k['seconds']} s"
        )
    return (
        f"Generated {atlas['generated']} from a real run ({atlas['seconds']} s in all,"
        f" {atlas['cycles']} race cycles per removal path):\n\n" + "\n".join(parts)
    )


def to_markdown(atlas: dict[str, Any]) -> str:
    out = ["# The mapping atlas", "", provenance(atlas), ""]
    for k in _suites(atlas):
        out += [f"## {k['suite']} ({k['kernel']})", "", matrix_markdown(atlas, k["suite"])]
    return "\n".join(out)


def to_html(atlas: dict[str, Any]) -> str:
    """One page, no outside files: a colour-coded matrix per kernel, each cell's evidence."""
    e = html.escape
    rows = [r["row"] for r in atlas["rows"]]
    api = {r["row"]: r["api"] for r in atlas["rows"]}
    what = {s["scenario"]: s["what"] for s in atlas["scenarios"]}
    order = [n for _, names in GROUPS for n in names]
    style = "".join(f".v-{re.sub(r'[^a-z]', '', v)}{{background:{c}}}" for v, c in COLOURS.items())
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>barmap mapping atlas</title>",
        "<style>body{font:13px sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:2px 4px;vertical-align:top}"
        "th{font-weight:normal;writing-mode:vertical-rl;transform:rotate(180deg)}"
        "td small{display:block;color:#333;max-width:11em;font-size:10px}"
        f"{style}</style></head><body>",
        "<h1>The mapping atlas</h1>",
        f"<p>{e(provenance(atlas)).replace(chr(10), '<br>')}</p>",
        "<p>"
        + " ".join(
            f"<span class='v-{re.sub(r'[^a-z]', '', v)}' style='padding:1px 4px'>{e(v)}</span>"
            f" {e(t)};"
            for v, t in LEGEND
        )
        + "</p>",
    ]
    for k in _suites(atlas):
        cells = _by(atlas["cells"], k["suite"])
        names = [n for n in order if any(c[1] == n for c in cells)]
        parts.append(f"<h2>{e(k['suite'])}: {e(k['kernel'])}</h2><table><tr><td></td>")
        parts += [f"<th title='{e(what.get(n, ''))}'>{e(n)}</th>" for n in names]
        parts.append("</tr>")
        for r in rows:
            parts.append(f"<tr><td title='{e(api.get(r, ''))}'><code>{e(r)}</code></td>")
            for n in names:
                c = cells.get((r, n))
                if c is None:
                    parts.append("<td></td>")
                    continue
                evidence = "; ".join(
                    str(c[f]) for f in ("value", "errno", "signal", "detail") if c.get(f)
                )
                cls = re.sub(r"[^a-z]", "", c["verdict"])
                parts.append(
                    f"<td class='v-{cls}' title='{e(evidence)}'>{e(short(c))}"
                    f"<small>{e(c.get('value', ''))}</small></td>"
                )
            parts.append("</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


# ---- the driver's own source, through its strategy table ----


def function_source(src: str, name: str) -> str:
    """A C function of ``src`` from its ``static`` line to its closing brace."""
    m = re.search(rf"^static [^\n;]*\b{re.escape(name)}\(.*?^\}}\n", src, re.M | re.S)
    if not m:
        raise KeyError(f"no function {name} in the driver")
    return m.group(0)


def _struct_field(src: str, struct: str, fld: str) -> str | None:
    m = re.search(rf"\b{re.escape(struct)}\s*=\s*\{{(.*?)\n\}};", src, re.S)
    f = re.search(rf"\.{fld}\s*=\s*(\w+)", m.group(1)) if m else None
    return f.group(1) if f else None


def row_functions(src: str, row: str) -> list[str]:
    """The functions that make a driver row's mapping: its allocator and its mmap or
    fault function, read from barmap_strategies[] and barmap_buf_kinds[]."""
    io = re.search(rf'BARMAP_IO_ROW\([^"]*"{re.escape(row)}",[^,]+,\s*&?(\w+),\s*(\w+)\)', src)
    if io:
        vm_ops, fill = io.groups()
        if fill != "NULL":
            return [fill]
        fault = _struct_field(src, vm_ops, "fault") or ""
        body = function_source(src, fault)
        inner = re.search(r"return (\w+)\(vmf", body)  # a wrapper: show what it calls
        return [inner.group(1) if inner else fault]
    buf = re.search(rf'BARMAP_BUF_ROW\((\w+),\s*"{re.escape(row)}",\s*&?(\w+)\)', src)
    if not buf:
        raise KeyError(f"{row} is no row of the driver's table")
    kind, vm_ops = buf.groups()
    entry = re.search(rf"\[{kind}\]\s*=\s*\{{\s*{kind},\s*\w+,\s*(\w+),\s*(\w+),\s*(\w+)", src)
    if not entry:
        raise KeyError(f"{kind} has no entry in barmap_buf_kinds[]")
    alloc, _free, mmap = entry.groups()
    if mmap != "NULL":
        return [alloc, mmap]
    if vm_ops != "NULL":
        return [alloc, _struct_field(src, vm_ops, "fault") or ""]
    # mapped through its dma-buf
    ops = re.search(r"struct dma_buf_ops (\w+) =", src)
    return [alloc, _struct_field(src, ops.group(1), "mmap") or ""] if ops else [alloc]


def excerpt(src: str, row: str) -> str:
    """At most EXCERPT_LINES lines: the row's mmap (or fault) function, with its
    allocator first when both fit."""
    funcs = [function_source(src, f) for f in row_functions(src, row)]
    both = "\n".join(funcs)
    if both.count("\n") <= EXCERPT_LINES:
        return both
    last = funcs[-1]
    lines = last.splitlines()
    if len(lines) > EXCERPT_LINES:
        raise ValueError(f"{row}'s function has {len(lines)} lines (more than {EXCERPT_LINES})")
    return last


def limits(atlas: dict[str, Any], row: str) -> list[str]:
    """What a row cannot do, from the matrix: each scenario where a kernel's cell is
    refused, wrong, kept, blocked or an error, once, with each kernel's value."""
    suites = [k["suite"] for k in _suites(atlas)]
    bad = ("refused", "wrong", "kept", "blocked", "error")
    out = []
    for s in atlas["scenarios"]:
        got = {c["suite"]: c for c in atlas["cells"]
               if c["row"] == row and c["scenario"] == s["scenario"]}  # fmt: skip
        if not any(c["verdict"] in bad for c in got.values()):
            continue
        said = {f"{c['verdict']}: {c.get('value', '')}" for c in got.values()}
        if len(said) == 1 and len(got) == len(suites):
            out.append(f"`{s['scenario']}`: {said.pop()}")
        else:
            each = "; ".join(f"{su}: {got[su]['verdict']}, {got[su].get('value', '')}"
                             for su in suites if su in got)  # fmt: skip
            out.append(f"`{s['scenario']}`: {each}")
    return out


def docs_markdown(atlas: dict[str, Any], src: str | None = None) -> str:
    """docs/atlas.md: the matrix of every kernel, then each row: its code, when to use
    it, what it cannot do."""
    src = DRIVER_SOURCE.read_text() if src is None else src
    what = {s["scenario"]: s["what"] for s in atlas["scenarios"]}
    out = [
        "# The mapping atlas",
        "",
        "Every way a driver maps memory into a process (a row), put through the same hostile",
        "scenarios (a column) on real guests: `make atlas` (both kernels), `barmap atlas`.",
        "This page is generated from that run; no cell is written by hand (`build/atlas.json`,"
        " `build/atlas.html`).",
        "",
        provenance(atlas),
        "",
        "The vfio-pci row runs in a guest of its own with intel-iommu (vfio-pci takes no device"
        " without an IOMMU, and Debian's kernels have no no-IOMMU mode); `resource2` maps a"
        " second barmap device that no driver holds. Under TCG no cache is modelled: UC, WC"
        " and WB run at one speed, and `bandwidth` measures the emulation, not the memory"
        " type, which `cache-mode` reads from the page tables.",
        "",
        "| verdict | means |",
        "| --- | --- |",
        *[f"| {v} | {t} |" for v, t in LEGEND],
        "",
        "| scenario | what the cell does |",
        "| --- | --- |",
        *[f"| `{n}` | {what[n]} |" for _, names in GROUPS for n in names if n in what],
        "",
    ]
    for k in _suites(atlas):
        out += [
            f"## The matrix on {k['suite']} ({k['kernel']})",
            "",
            matrix_markdown(atlas, k["suite"]),
        ]
    out += ["## The rows", ""]
    for r in atlas["rows"]:
        name = r["row"]
        out += [f"### `{name}`: {r['api']}", "", WHEN.get(name, ""), ""]
        if r.get("driver"):
            out += ["```c", excerpt(src, name).rstrip(), "```", ""]
        else:
            out += [f"In the kernel: {_KERNEL_SOURCE.get(name, '')}.", ""]
        cannot = limits(atlas, name)
        out.append("What it cannot do, from the matrix:" if cannot else "Every cell works.")
        out += [f"- {line}" for line in cannot] + [""]
    return "\n".join(out)
