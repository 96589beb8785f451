"""The atlas's rendering and the driver excerpts it shows, without a guest."""

from __future__ import annotations

import pytest

from barmap.runs import atlas_report as r

DRIVER_ROWS = ("bar", "bar-remap", "bar-iomap", "dma", "reserved", "reserved-remap", "dma-wc",
               "dma-pages", "dma-noncontig", "ram-remap", "pages-insert", "pages-fault",
               "vmalloc", "dmabuf")  # fmt: skip
# what each row's excerpt must show: the kernel call that makes it that row
CALLS = {
    "bar": "vmf_insert_pfn", "bar-remap": "io_remap_pfn_range", "bar-iomap": "vm_iomap_memory",
    "dma": "dma_mmap_coherent", "reserved": "vmf_insert_pfn",
    "reserved-remap": "remap_pfn_range", "dma-wc": "dma_mmap_wc",
    "dma-pages": "dma_mmap_pages", "dma-noncontig": "dma_mmap_noncontiguous",
    "ram-remap": "remap_pfn_range", "pages-insert": "vm_insert_pages",
    "pages-fault": "vmf->page", "vmalloc": "remap_vmalloc_range", "dmabuf": "remap_pfn_range",
}  # fmt: skip


@pytest.mark.parametrize("row", DRIVER_ROWS)
def test_each_driver_row_shows_its_own_mmap_function(row: str) -> None:
    src = r.DRIVER_SOURCE.read_text()
    text = r.excerpt(src, row)
    assert text.count("\n") <= r.EXCERPT_LINES
    assert CALLS[row] in text
    assert text.lstrip().startswith("static ")


def test_a_row_the_driver_does_not_have_is_an_error() -> None:
    with pytest.raises(KeyError, match="no row"):
        r.row_functions(r.DRIVER_SOURCE.read_text(), "no-such-row")


def test_a_long_function_is_refused_not_cut() -> None:
    src = 'BARMAP_IO_ROW(0, "long", BARMAP_OBJ_BAR, &ops, long_fill)\n'
    src += "static int long_fill(void)\n{\n" + "\tx();\n" * 30 + "}\n"
    with pytest.raises(ValueError, match=f"more than {r.EXCERPT_LINES}"):
        r.excerpt(src, "long")


def _atlas() -> dict:
    rows = [{"row": "bar", "api": "vmf_insert_pfn()", "driver": True},
            {"row": "vfio", "api": "vfio-pci", "driver": False}]  # fmt: skip
    scen = [{"scenario": "readback", "what": "read back"},
            {"scenario": "race-sysfs", "what": "race"}]  # fmt: skip
    cells = [
        {"suite": "bookworm", "row": "bar", "scenario": "readback", "verdict": "ok", "value": ""},
        {"suite": "bookworm", "row": "bar", "scenario": "race-sysfs", "verdict": "wrong",
         "value": "3 of 200 survived removal", "number": 3},
        {"suite": "bookworm", "row": "vfio", "scenario": "readback", "verdict": "refused",
         "value": "mmap: EINVAL", "errno": "EINVAL"},
        {"suite": "bookworm", "row": "vfio", "scenario": "race-sysfs", "verdict": "n/a",
         "value": "x"},
    ]  # fmt: skip
    kernels = [{"suite": "bookworm", "kernel": "6.1.0-57-amd64", "qemu": "QEMU 7.2",
                "machine": "q35", "accel": "tcg", "seconds": 10, "iommu": False}]  # fmt: skip
    return {"generated": "today", "seconds": 10, "cycles": 200, "kernels": kernels,
            "rows": rows, "scenarios": scen, "cells": cells}  # fmt: skip


def test_markdown_and_html_show_each_cell() -> None:
    a = _atlas()
    md = r.to_markdown(a)
    assert "| `bar` | ok |" in md and "3/200" in md and "EINVAL" in md
    page = r.to_html(a)
    assert page.count("<td class='v-") == 4
    assert "v-wrong" in page and "3 of 200 survived removal" in page
    assert "http" not in page.replace("<!doctype html>", "")  # self-contained


def test_docs_list_what_a_row_cannot_do() -> None:
    doc = r.docs_markdown(_atlas())
    assert "`race-sysfs`: wrong: 3 of 200 survived removal" in doc
    assert "```c" in doc and "vmf_insert_pfn" in doc
    assert "drivers/vfio/pci/vfio_pci_core.c" in doc
