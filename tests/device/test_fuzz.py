"""Seeded random test: >= 100,000 hostile register writes and DMA requests.

A Python model of the device (the registers that matter, the DMA engine with
its documented check order, BAR2 and the guest RAM the DMA may touch, the
power state and the dead link's dropped config writes) runs alongside.  The
commands and the answers the model expects are generated up front and
pipelined to QEMU in batches.  At checkpoints and at the end the
device's registers, all of BAR2, the DMA zone in guest RAM and the guard
regions around it (and at the end of guest RAM) must equal the model: so
every accepted DMA copied exactly its range and every refused one nothing.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field

import pytest
from bmdev import D0, D3HOT, DEVFN, GUEST_RAM, PCI_COMMAND, PMCSR, Barmap, R, pattern
from bmdev import DMA_BUSY as BUSY
from bmdev import DMA_CMD_IRQ as CMD_IRQ
from bmdev import DMA_DONE as DONE
from bmdev import DMA_ERR_SHIFT as SHIFT
from bmdev import DMA_ERROR as ERROR
from bmdev import DMA_FROM_DEV as FROM_DEV
from bmdev import DMA_MAX_LEN as MAXLEN
from bmdev import DMA_START as START

OPS = int(os.environ.get("BARMAP_FUZZ_OPS", "100000"))
SEED = int(os.environ.get("BARMAP_FUZZ_SEED", "20241124"))
U64 = (1 << 64) - 1

BAR = 0x10000  # BAR2 size for the run
ZONE_LO = 0x400000  # DMA zone in guest RAM (clear of the BIOS below 1 MiB)
ZONE = 0x40000
GUARD = 0x10000  # guards around the zone
END_GUARD = GUARD  # and at the end of guest RAM (partly-unmapped DMAs)
WIN_LO = ZONE_LO - GUARD  # modelled window of guest RAM
WIN = ZONE + 2 * GUARD
DELAY_STEP = 20_000  # clock_step that surely fires a pending DMA (delay 10 us)

REG = {k[len("BARMAP_REG_") :]: v for k, v in R.items() if k.startswith("BARMAP_REG_")}
REG.pop("BAR"), REG.pop("BAR_SIZE")
ERR = {k[len("BARMAP_DMA_ERR_") :]: v for k, v in R.items() if k.startswith("BARMAP_DMA_ERR_")}
IRQ_ALL = R["BARMAP_IRQ_ALL"]


@dataclass
class Model:
    mask: int
    bar: bytearray
    win: bytearray  # guest RAM [WIN_LO, WIN_LO + WIN)
    end: bytes  # guest RAM [GUEST_RAM - END_GUARD, GUEST_RAM), never written
    regs: dict[str, int] = field(default_factory=dict)
    master: bool = True
    d3: bool = False  # PMCSR says D3hot: BAR0 reads all-ones, drops writes
    d3_left: int = 0  # the generator's ops until it goes back to D0
    busy: bool = False
    cur: tuple[int, int, int, int] = (0, 0, 0, 0)
    accepted: int = 0
    refused: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("SCRATCH", "DMA_BUS", "DMA_OFF", "DMA_LEN", "DMA_STATUS"):
            self.regs[name] = 0
        for name in ("IRQ_STATUS", "IRQ_MASK", "FAULT"):
            self.regs[name] = 0

    # registers

    def write32(self, off: int, val: int) -> None:
        r = self.regs
        if off == REG["SCRATCH"]:
            r["SCRATCH"] = val
        elif off == REG["DMA_BUS_LO"]:
            r["DMA_BUS"] = (r["DMA_BUS"] & ~0xFFFFFFFF) | val
        elif off == REG["DMA_BUS_HI"]:
            r["DMA_BUS"] = (r["DMA_BUS"] & 0xFFFFFFFF) | val << 32
        elif off == REG["DMA_OFF_LO"]:
            r["DMA_OFF"] = (r["DMA_OFF"] & ~0xFFFFFFFF) | val
        elif off == REG["DMA_OFF_HI"]:
            r["DMA_OFF"] = (r["DMA_OFF"] & 0xFFFFFFFF) | val << 32
        elif off == REG["DMA_LEN"]:
            r["DMA_LEN"] = val
        elif off == REG["DMA_CMD"]:
            if val & START:
                self.start(val)
        elif off == REG["IRQ_RAISE"]:
            r["IRQ_STATUS"] |= val & IRQ_ALL
        elif off == REG["IRQ_ACK"]:
            r["IRQ_STATUS"] &= ~val
        elif off == REG["IRQ_MASK"]:
            r["IRQ_MASK"] = val & IRQ_ALL
        elif off == REG["FAULT"]:
            r["FAULT"] = val & R["BARMAP_FAULT_ALL"]

    def write(self, off: int, width: int, val: int) -> None:
        if self.d3:
            return
        if width == 4:
            self.write32(off, val)
        elif width == 8:
            self.write32(off, val & 0xFFFFFFFF)
            self.write32(off + 4, val >> 32)
        # 1- and 2-byte writes are dropped

    # DMA

    def dead(self) -> bool:
        """FAULT_ALL_ONES: the dead link drops config writes."""
        return bool(self.regs["FAULT"] & R["BARMAP_FAULT_ALL_ONES"])

    def pm_write(self, val: int) -> None:
        state = val & R["BARMAP_PM_STATE_MASK"]
        if not self.dead() and state in (D0, D3HOT):  # D1, D2: discarded
            self.d3 = state == D3HOT

    def read(self, name: str) -> int:
        return 0xFFFFFFFF if self.d3 else self.expected_regs()[name]

    def check(self, bus: int, off: int, length: int) -> int:
        if length == 0 or length > MAXLEN:
            return ERR["LEN"]
        if off >= BAR or length > BAR - off:
            return ERR["RANGE"]
        last = bus + length - 1
        if last > U64 or (bus & ~self.mask & U64) or (last & ~self.mask & U64):
            return ERR["MASK"]
        if self.d3:
            return ERR["POWER"]
        if not self.master:
            return ERR["NO_MASTER"]
        if self.regs["FAULT"] & R["BARMAP_FAULT_DMA_ERROR"]:
            return ERR["INJECTED"]
        return 0

    def finish(self, cmd: int, err: int, keep_busy: bool = False) -> None:
        if err:
            self.regs["DMA_STATUS"] = (BUSY if keep_busy else 0) | ERROR | err << SHIFT
            self.refused[err] = self.refused.get(err, 0) + 1
        else:
            self.regs["DMA_STATUS"] = DONE
            self.accepted += 1
        if cmd & CMD_IRQ:
            bit = R["BARMAP_IRQ_DMA_ERROR"] if err else R["BARMAP_IRQ_DMA_DONE"]
            self.regs["IRQ_STATUS"] |= bit

    def start(self, cmd: int) -> None:
        r = self.regs
        if self.busy:
            self.finish(cmd, ERR["BUSY"], keep_busy=True)
            return
        err = self.check(r["DMA_BUS"], r["DMA_OFF"], r["DMA_LEN"])
        if err:
            self.finish(cmd, err)
            return
        self.busy = True
        self.cur = (r["DMA_BUS"], r["DMA_OFF"], r["DMA_LEN"], cmd)
        r["DMA_STATUS"] = BUSY

    def run(self) -> None:
        """The timer fired."""
        if not self.busy:
            return
        self.busy = False
        bus, off, length, cmd = self.cur
        err = self.check(bus, off, length)
        if not err and not (bus + length <= GUEST_RAM):
            err = ERR["BUS"]  # the generator only aims outside RAM far away
        if not err:
            assert ZONE_LO <= bus and bus + length <= ZONE_LO + ZONE, "generator bug"
            w = bus - WIN_LO
            if cmd & FROM_DEV:
                self.win[w : w + length] = self.bar[off : off + length]
            else:
                self.bar[off : off + length] = self.win[w : w + length]
        self.finish(cmd, err)

    def expected_regs(self) -> dict[str, int]:
        r = self.regs
        return {
            "SCRATCH": r["SCRATCH"],
            "DMA_BUS_LO": r["DMA_BUS"] & 0xFFFFFFFF,
            "DMA_BUS_HI": r["DMA_BUS"] >> 32,
            "DMA_OFF_LO": r["DMA_OFF"] & 0xFFFFFFFF,
            "DMA_OFF_HI": r["DMA_OFF"] >> 32,
            "DMA_LEN": r["DMA_LEN"],
            "DMA_STATUS": r["DMA_STATUS"],
            "IRQ_STATUS": r["IRQ_STATUS"],
            "IRQ_MASK": r["IRQ_MASK"],
            "FAULT": r["FAULT"],
        }


class Gen:
    """Hostile values, biased to the edges."""

    def __init__(self, rng: random.Random, mask: int) -> None:
        self.rng = rng
        self.mask = mask

    def u32(self) -> int:
        rng = self.rng
        return rng.choice(
            [
                0,
                0xFFFFFFFF,
                0x80000000,
                0x7FFFFFFF,
                1,
                rng.getrandbits(32),
                rng.getrandbits(32),
                1 << rng.randrange(32),
                (1 << rng.randrange(33)) - 1,
            ]
        )

    def length(self) -> int:
        rng = self.rng
        return rng.choice(
            [
                0,
                1,
                rng.randrange(1, 64),
                rng.randrange(1, 0x2000),
                rng.randrange(1, BAR + 1),
                BAR,
                BAR + 1,
                MAXLEN,
                MAXLEN + 1,
                0xFFFFFFFF,
                self.u32(),
            ]
        )

    def off(self, length: int) -> int:
        rng = self.rng
        n = max(length, 1)
        return rng.choice(
            [
                0,
                rng.randrange(BAR),
                max(0, BAR - n),
                BAR - n + 1 if n <= BAR else 1,
                BAR,
                U64 - rng.randrange(64),
                (U64 - n + 2) & U64,
                1 << rng.randrange(12, 64),
                rng.getrandbits(64),
                0xFFFFFFFF,
                0x100000000,
            ]
        )

    def bus(self, length: int) -> int:
        rng = self.rng
        n = max(length, 1)
        kind = rng.randrange(8)
        if kind <= 2 and n <= ZONE:  # inside the zone: a good address
            return ZONE_LO + rng.randrange(ZONE - n + 1)
        if kind == 3 and n >= 2:  # starts in guest RAM, runs off its end
            return GUEST_RAM - rng.randrange(1, min(n, END_GUARD + 1))
        if kind == 4:  # wraps around 2^64
            return (U64 - rng.randrange(n)) & U64
        if kind == 5:  # far above anything mapped
            return rng.randrange(1 << 40, 1 << 56)
        if kind == 6:  # just over the DMA mask
            return (self.mask + 1 - rng.randrange(n + 1)) & U64 if self.mask < U64 else 1 << 44
        return rng.getrandbits(64) | 1 << 40


def pm_command(val: int) -> list[str]:
    """A 2-byte write to PMCSR, as setpci does."""
    cfg = 0x80000000 | DEVFN << 8 | (PMCSR & 0xFC)
    return [f"outl 0xcf8 0x{cfg:x}", f"outw 0x{0xCFC + (PMCSR & 3):x} 0x{val:x}"]


def generate(m: Model, gen: Gen, ops: int, regs: int) -> list[tuple[str, int | None]]:
    """Commands with the answers the model expects (None: anything); BAR0 is at ``regs``.
    The device is left in D0, so that the checkpoints can read BAR0."""
    rng = gen.rng
    out: list[tuple[str, int | None]] = []
    known = sorted(REG.values())

    def power(val: int) -> None:
        m.pm_write(val)
        out.extend((c, None) for c in pm_command(val))

    def dma(good: bool, step: bool) -> None:
        if good:  # to move data around
            length = rng.randrange(1, 0x4000)
            off = rng.randrange(BAR - length + 1)
            bus = ZONE_LO + rng.randrange(ZONE - length + 1)
        else:
            length = gen.length()
            off = gen.off(length)
            bus = gen.bus(length)
        cmd = rng.choice([START, START | FROM_DEV, START | CMD_IRQ, gen.u32() | START])
        m.write(REG["DMA_BUS_LO"], 8, bus)
        m.write(REG["DMA_OFF_LO"], 8, off)
        m.write(REG["DMA_LEN"], 4, length)
        m.write(REG["DMA_CMD"], 4, cmd)
        out.append((f"writeq 0x{regs + REG['DMA_BUS_LO']:x} 0x{bus:x}", None))
        out.append((f"writeq 0x{regs + REG['DMA_OFF_LO']:x} 0x{off:x}", None))
        out.append((f"writel 0x{regs + REG['DMA_LEN']:x} 0x{length:x}", None))
        out.append((f"writel 0x{regs + REG['DMA_CMD']:x} 0x{cmd:x}", None))
        if step:
            out.append((f"clock_step {DELAY_STEP}", None))
            m.run()

    while len(out) < ops:
        if m.d3:  # D3hot for a few operations at a time
            m.d3_left -= 1
            if m.d3_left <= 0:
                power(rng.choice([D0, D0, 0x8000, 0xFFFC]))  # D0, whatever else is in it
        k = rng.randrange(100)
        if k < 45:  # a whole DMA request
            dma(good=rng.random() < 0.4, step=rng.random() < 0.8)
        elif k < 80:  # a hostile register write, any width, known or unknown offset
            width = rng.choice([1, 2, 4, 4, 4, 8])
            if rng.random() < 0.7:
                off = rng.choice(known)
            else:
                off = rng.randrange(0x1000)
            off &= ~(width - 1) & 0xFFF
            if width == 8 and off == 0xFF8:
                width = 4
            val = gen.u32() | (gen.u32() << 32 if width == 8 else 0)
            val &= (1 << (8 * width)) - 1
            if off == REG["FAULT"] and rng.random() < 0.7:
                val &= ~(R["BARMAP_FAULT_DMA_ERROR"])  # mostly keep DMA alive
            m.write(off, width, val)
            w = {1: "b", 2: "w", 4: "l", 8: "q"}[width]
            out.append((f"write{w} 0x{regs + off:x} 0x{val:x}", None))
        elif k < 88:  # a register read the model can predict
            name = rng.choice(sorted(m.expected_regs()))
            out.append((f"readl 0x{regs + REG[name]:x}", m.read(name)))
        elif k < 95:
            out.append((f"clock_step {DELAY_STEP}", None))
            m.run()
        elif k < 98:  # bus mastering off / on (dropped under the dead link)
            master = rng.random() < 0.6
            if not m.dead():
                m.master = master
            cfg = 0x80000000 | DEVFN << 8 | PCI_COMMAND
            out.append((f"outl 0xcf8 0x{cfg:x}", None))
            out.append((f"outw 0xcfc 0x{6 if master else 2:x}", None))
        elif not m.d3 and not m.dead():  # into D3hot, or a D1/D2 that is refused
            if not m.busy and rng.random() < 0.5:
                dma(good=True, step=False)  # pending: its timer may fire in D3hot
            m.d3_left = rng.randrange(1, 30)
            power(rng.choice([D3HOT, D3HOT, D3HOT, 1, 2, 0xFFFF]))
    if m.d3:
        power(D0)
    out.append((f"clock_step {DELAY_STEP}", None))
    m.run()
    return out


def verify_memory(d: Barmap, m: Model) -> None:
    qt = d.qt
    assert qt.readl(d.regs_addr + REG["FAULT"]) == m.regs["FAULT"]
    # BAR2 through the CPU needs the BAR decoded: lift the faults for the read
    qt.writel(d.regs_addr + REG["FAULT"], m.regs["FAULT"] & R["BARMAP_FAULT_DMA_ERROR"])
    got = qt.read(d.mem_addr, BAR)
    qt.writel(d.regs_addr + REG["FAULT"], m.regs["FAULT"])
    assert got == bytes(m.bar), "BAR2 differs from the model"
    win = qt.read(WIN_LO, WIN)
    assert win[:GUARD] == bytes(m.win[:GUARD]), "guard below the DMA zone was written"
    assert win[-GUARD:] == bytes(m.win[-GUARD:]), "guard above the DMA zone was written"
    assert win == bytes(m.win), "DMA zone differs from the model"
    assert qt.read(GUEST_RAM - END_GUARD, END_GUARD) == m.end, "end of guest RAM written"


@pytest.mark.parametrize(
    "mask,ops",
    [(U64, OPS), (0xFFFFFFF, max(OPS // 5, 1000))],
    ids=["mask-64", "mask-28"],
)
def test_random_hostile_operations(make_dev, mask: int, ops: int) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(SEED ^ mask)
    d: Barmap = make_dev(f"size={BAR},dma-mask=0x{mask:x}")
    qt = d.qt
    bar = pattern(BAR, 0x0BA20000)
    win = pattern(WIN, 0x0E4A0000, offset=WIN_LO)
    end = pattern(END_GUARD, 0x0E4D0000, offset=GUEST_RAM - END_GUARD)
    qt.write(d.mem_addr, bar)
    qt.write(WIN_LO, win)
    qt.write(GUEST_RAM - END_GUARD, end)
    m = Model(mask=mask, bar=bytearray(bar), win=bytearray(win), end=end)
    gen = Gen(rng, mask)

    t0 = time.monotonic()
    sent = 0
    chunk = 10_000
    while sent < ops:
        cmds = generate(m, gen, min(chunk, ops - sent), d.regs_addr)
        answers = qt.batch(c for c, _ in cmds)
        for (c, want), got in zip(cmds, answers):
            if want is not None:
                assert int(got, 16) == want, f"after {sent} ops: {c} -> {got}, model {want:#x}"
        sent += len(cmds)
        assert qt.alive()
        regs = {name: d.reg(name) for name in m.expected_regs()}
        assert regs == m.expected_regs(), f"registers differ from the model after {sent} ops"
        verify_memory(d, m)
    elapsed = time.monotonic() - t0

    assert sent >= ops
    assert m.accepted > ops // 50, f"too few DMAs went through: {m.accepted}"
    for code in ("LEN", "RANGE", "MASK", "BUS", "NO_MASTER", "BUSY", "POWER"):
        assert m.refused.get(ERR[code], 0) > 0, f"the run never hit ERR_{code}"
    assert qt.alive() and d.reg("ID") == R["BARMAP_ID_MAGIC"]
    print(f"{sent} ops in {elapsed:.1f} s; {m.accepted} DMAs done, refused {m.refused}")
