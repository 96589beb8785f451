"""End to end: both mmap strategies in a real guest, checked by the guest and by the host."""

from __future__ import annotations

import pytest

from barmap.guest import checks
from barmap.guest.checks import parse_kv
from barmap.guest.machine import Machine

pytestmark = pytest.mark.guest


def test_bar_strategy_round_trips_the_whole_bar(barmap_vm: Machine) -> None:
    _, bar_size = barmap_vm.qmp.barmap_bar("barmap0")
    result = checks.run_tool(barmap_vm, "bar")
    assert result.passed, result.detail
    assert result.bytes_checked == bar_size
    assert result.mismatches == 0


def test_dma_coherent_strategy_round_trips(barmap_vm: Machine) -> None:
    result = checks.run_tool(barmap_vm, "dma")
    assert result.passed, result.detail
    assert result.bytes_checked > 0
    assert result.mismatches == 0


def test_host_sees_what_the_guest_wrote_into_the_bar(barmap_vm: Machine) -> None:
    seed = 0x1234ABCD
    assert checks.run_tool(barmap_vm, "bar", seed=seed).passed
    view = checks.host_view_check(barmap_vm, seed=seed)
    assert view.passed, view.detail
    # the host check can fail: the same bytes against another seed's pattern
    other = checks.host_view_check(barmap_vm, seed=seed ^ 0xFF)
    assert not other.passed
    assert other.mismatches == other.bytes_checked // 4


def test_guest_and_host_agree_on_the_bar_address(barmap_vm: Machine) -> None:
    addr, size = barmap_vm.qmp.barmap_bar("barmap0")
    info = parse_kv(barmap_vm.run("barmap-check info", check=True).output.strip())
    assert int(info["bar_phys"], 0) == addr
    assert int(info["bar_size"], 0) == size


@pytest.mark.parametrize(
    ("case", "errno"),
    [
        ("bar-past-end", "EINVAL"),
        ("unknown-buffer-id", "EINVAL"),
        ("map-private", "EINVAL"),
        ("bad-ioctl", "ENOTTY"),
        ("free-while-mapped", "EBUSY"),
        ("mremap-grow", "EFAULT"),
    ],
)
def test_bad_mappings_are_refused_with_an_errno(barmap_vm: Machine, case: str, errno: str) -> None:
    refusals = _refusals(barmap_vm)
    assert case in refusals, f"the tool did not try {case}"
    assert refusals[case] == errno


_cache: dict[int, dict[str, str]] = {}


def _refusals(vm: Machine) -> dict[str, str]:
    """The tool's refusal matrix, run once per VM: case -> errno name it got."""
    if id(vm) not in _cache:
        output = vm.run("barmap-check probe-refusals").output
        _cache[id(vm)] = {
            kv["refusal"]: kv.get("errno", "none")
            for kv in map(parse_kv, output.splitlines())
            if "refusal" in kv
        }
    return _cache[id(vm)]


@pytest.mark.parametrize("strategy", ["bar", "bar-remap"])
@pytest.mark.parametrize(
    ("cache", "memtype"), [("uc", "uncached-minus"), ("wc", "write-combining")]
)
def test_cache_mode_reaches_the_page_attributes(
    barmap_vm: Machine, strategy: str, cache: str, memtype: str
) -> None:
    """SET_CACHE decides the memory type the kernel's PAT records for the BAR mapping."""
    addr, _ = barmap_vm.qmp.barmap_bar("barmap0")
    pat = "/sys/kernel/debug/x86/pat_memtype_list"
    needle = f"[mem 0x{addr:016x}-"
    assert needle not in barmap_vm.run(f"cat {pat}", check=True).output  # nothing mapped yet
    barmap_vm.run(
        f"barmap-check hold --strategy {strategy} --cache {cache} --size 4 > /tmp/hold.log 2>&1 &"
    )
    lines: list[str] = []
    for _ in range(40):
        lines = [ln for ln in barmap_vm.run(f"cat {pat}").output.splitlines() if needle in ln]
        if lines:
            break
        barmap_vm.run("sleep 0.1")
    assert lines and all(ln.endswith(memtype) for ln in lines), lines
    barmap_vm.run("kill -USR1 $!; wait", timeout=30)  # seen: the holder may stop holding
    assert parse_kv(barmap_vm.run("cat /tmp/hold.log").output.strip())["verdict"] == "PASS"
