/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * barmap: a PCI device for testing how drivers map device memory into
 * userspace (remap_pfn_range vs dma_mmap_coherent).
 *
 *   BAR0  MMIO registers (include/barmap_regs.h, docs/device.md), 4 KiB
 *         or `reg-size` (the space above the register block is reserved)
 *   BAR2  RAM of `size` bytes (64-bit prefetchable unless bar2-64bit or
 *         bar2-prefetch say otherwise), or a memory backend (`memdev=`) so
 *         the host sees the very bytes the guest sees
 *   BAR4  optional (`io-bar-size`): the first bytes of the register block
 *         again, in I/O space
 *
 * plus a DMA engine (guest memory <-> BAR2, through pci_dma_* so a vIOMMU
 * applies), INTx and MSI, a PCI power management capability (D0, D3hot),
 * fault injection (a dead link: BAR2 and config space read all-ones; BAR2
 * not decoded, DMA errors, lost interrupts) settable from the guest through
 * the FAULT register and from the host through the fault-* QOM properties,
 * and identity properties (vendor-id, device-id, ...) to pose as another
 * card.
 *
 * In the style of hw/misc/edu.c and hw/misc/ivshmem.c.  Unlike edu, no guest
 * value can abort QEMU: every bad access is logged (LOG_GUEST_ERROR) and
 * dropped, every bad DMA request is refused with an error code.
 */

#include "qemu/osdep.h"
#include "barmap-compat.h"
#include "qemu/units.h"
#include "qemu/bitops.h"
#include "qemu/host-utils.h"
#include "qemu/log.h"
#include "qemu/module.h"
#include "qemu/timer.h"
#include "qapi/error.h"
#include "qom/object.h"
#include "hw/pci/msi.h"
#include "hw/qdev-properties.h"
#include "migration/vmstate.h"
#include "trace.h"
#include "barmap_regs.h"

#define TYPE_BARMAP "barmap"
OBJECT_DECLARE_SIMPLE_TYPE(BarmapState, BARMAP)

/* Default delay between DMA START and the transfer (virtual clock). */
#define BARMAP_DMA_DELAY_NS_DEFAULT 10000

struct BarmapState {
    PCIDevice pdev;

    MemoryRegion mmio;          /* BAR0 */
    MemoryRegion bar2;          /* BAR2: a container ... */
    MemoryRegion ram;           /* ... holding our own RAM, */
    MemoryRegion *mem;          /* or the memdev's region: what BAR2 holds */
    MemoryRegion ones;          /* all-ones (dead link, D3hot), priority 1 */
    MemoryRegion io;            /* BAR4, with io-bar-size */
    QEMUTimer dma_timer;

    /* properties */
    uint64_t mem_size;          /* effective BAR2 size after realize */
    uint64_t dma_mask;
    uint32_t dma_delay_ns;
    HostMemoryBackend *hostmem;
    bool has_msi;
    uint16_t vendor_id;
    uint16_t device_id;
    uint16_t subsys_vendor_id;
    uint16_t subsys_id;
    uint32_t class_code;        /* base class << 16 | subclass << 8 | prog-if */
    uint8_t revision;
    uint64_t reg_size;          /* BAR0 */
    bool bar2_64bit;
    bool bar2_prefetch;
    uint64_t io_size;           /* BAR4, 0: none */

    /* registers */
    uint32_t scratch;
    uint64_t dma_bus;
    uint64_t dma_off;
    uint32_t dma_len;
    uint32_t dma_status;
    uint32_t irq_status;
    uint32_t irq_mask;
    uint32_t fault;

    /* the transfer that is running, latched at START */
    uint64_t cur_bus;
    uint64_t cur_off;
    uint32_t cur_len;
    uint32_t cur_cmd;

    /*
     * Bumped by reset and unrealize: a transfer that sees it change across
     * a pci_dma_* call knows the device was reset or removed under it.
     */
    uint32_t generation;

    bool irq_pending;           /* (irq_status & irq_mask) != 0, last seen */

    /*
     * What barmap_irq_update last traced (zero: the reset state), so that an
     * update that changes nothing, as every config write does, is quiet.
     */
    uint32_t traced_status;
    uint32_t traced_mask;
    bool traced_msi;
    bool traced_lost;
};

/* Power management: the D-state lives in PMCSR, in config space */

static bool barmap_d3hot(BarmapState *s)
{
    uint16_t pmcsr = pci_get_word(s->pdev.config + BARMAP_CFG_PM_CSR);

    return (pmcsr & BARMAP_PM_STATE_MASK) == BARMAP_PM_STATE_D3HOT;
}

/* Interrupts */

/* the interrupt state, when it differs from the one traced last */
static void barmap_trace_irq(BarmapState *s, bool pending, bool msi, bool lost)
{
    if (s->traced_status == s->irq_status && s->traced_mask == s->irq_mask &&
        s->traced_msi == msi && s->traced_lost == lost) {
        return;
    }
    s->traced_status = s->irq_status;
    s->traced_mask = s->irq_mask;
    s->traced_msi = msi;
    s->traced_lost = lost;
    trace_barmap_irq_update(s->irq_status, s->irq_mask, pending, msi, lost);
}

static void barmap_update_irq(BarmapState *s)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    bool pending = (s->irq_status & s->irq_mask) != 0;
    /* a function in D3hot signals no interrupt, as under FAULT_IRQ_LOST */
    bool lost = (s->fault & BARMAP_FAULT_IRQ_LOST) || barmap_d3hot(s);
    bool msi = s->has_msi && msi_enabled(pdev);

    barmap_trace_irq(s, pending, msi, lost);
    if (msi) {
        pci_set_irq(pdev, 0);
        if (pending && !s->irq_pending && !lost) {
            trace_barmap_irq_msi();
            msi_notify(pdev, 0);
        }
    } else {
        pci_set_irq(pdev, pending && !lost);
    }
    s->irq_pending = pending;
}

static void barmap_raise_irq(BarmapState *s, uint32_t bits)
{
    s->irq_status |= bits & BARMAP_IRQ_ALL;
    barmap_update_irq(s);
}

/* Faults and power state: what BAR2 shows */

static void barmap_apply_regions(BarmapState *s)
{
    bool ones = (s->fault & BARMAP_FAULT_ALL_ONES) || barmap_d3hot(s);

    memory_region_transaction_begin();
    memory_region_set_enabled(&s->ones, ones);
    memory_region_set_enabled(s->mem, !(s->fault & BARMAP_FAULT_NO_DECODE));
    memory_region_transaction_commit();
}

static void barmap_apply_fault(BarmapState *s)
{
    barmap_apply_regions(s);
    barmap_update_irq(s);
}

static void barmap_set_fault(BarmapState *s, uint32_t fault)
{
    fault &= BARMAP_FAULT_ALL;
    trace_barmap_fault(s->fault, fault);
    s->fault = fault;
    if (DEVICE(s)->realized) {
        barmap_apply_fault(s);
    }
}

/* DMA */

static bool barmap_bus_master(BarmapState *s)
{
    return pci_get_word(s->pdev.config + PCI_COMMAND) & PCI_COMMAND_MASTER;
}

static void barmap_dma_finish(BarmapState *s, uint32_t cmd, uint32_t err,
                              bool keep_busy)
{
    uint32_t busy = keep_busy ? (s->dma_status & BARMAP_DMA_STATUS_BUSY) : 0;

    if (err == BARMAP_DMA_ERR_NONE) {
        s->dma_status = BARMAP_DMA_STATUS_DONE;
    } else {
        s->dma_status = busy | BARMAP_DMA_STATUS_ERROR |
                        (err << BARMAP_DMA_STATUS_ERR_SHIFT);
    }
    if (cmd & BARMAP_DMA_CMD_IRQ) {
        barmap_raise_irq(s, err ? BARMAP_IRQ_DMA_ERROR : BARMAP_IRQ_DMA_DONE);
    }
}

/*
 * Validate a request.  The order is the documented one: the first failing
 * check gives the error code.  Nothing here touches memory.
 */
static uint32_t barmap_dma_check(BarmapState *s, uint64_t bus, uint64_t off,
                                 uint64_t len)
{
    uint64_t last;

    if (len == 0 || len > BARMAP_DMA_MAX_LEN) {
        return BARMAP_DMA_ERR_LEN;
    }
    if (off >= s->mem_size || len > s->mem_size - off) {
        return BARMAP_DMA_ERR_RANGE;
    }
    last = bus + (len - 1);
    if (last < bus || (bus & ~s->dma_mask) || (last & ~s->dma_mask)) {
        return BARMAP_DMA_ERR_MASK;
    }
    if (barmap_d3hot(s)) {
        return BARMAP_DMA_ERR_POWER;
    }
    if (!barmap_bus_master(s)) {
        return BARMAP_DMA_ERR_NO_MASTER;
    }
    if (s->fault & BARMAP_FAULT_DMA_ERROR) {
        return BARMAP_DMA_ERR_INJECTED;
    }
    return BARMAP_DMA_ERR_NONE;
}

static void barmap_dma_start(BarmapState *s, uint32_t cmd)
{
    uint32_t err;

    trace_barmap_dma_start(s->dma_bus, s->dma_off, s->dma_len, cmd);
    if (s->dma_status & BARMAP_DMA_STATUS_BUSY) {
        /* Refuse, but leave the running transfer alone. */
        trace_barmap_dma_error(s->dma_bus, s->dma_off, s->dma_len, cmd,
                               BARMAP_DMA_ERR_BUSY);
        barmap_dma_finish(s, cmd, BARMAP_DMA_ERR_BUSY, true);
        return;
    }
    err = barmap_dma_check(s, s->dma_bus, s->dma_off, s->dma_len);
    if (err) {
        trace_barmap_dma_error(s->dma_bus, s->dma_off, s->dma_len, cmd, err);
        barmap_dma_finish(s, cmd, err, false);
        return;
    }
    s->cur_bus = s->dma_bus;
    s->cur_off = s->dma_off;
    s->cur_len = s->dma_len;
    s->cur_cmd = cmd;
    s->dma_status = BARMAP_DMA_STATUS_BUSY;
    timer_mod(&s->dma_timer,
              qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) + s->dma_delay_ns);
}

/*
 * The copy, through a bounce buffer.  pci_dma_read/pci_dma_write can reach
 * any device on the bus, including one that resets or unplugs this one (a
 * root port's Slot Control or Bridge Control in the MMCONFIG window), so
 * nothing of the device is used after them unless its generation is the one
 * the transfer started in.  Returns false when it was not: the transfer is
 * gone with the device state it belonged to.
 */
static bool barmap_dma_copy(BarmapState *s, uint64_t bus, uint64_t off,
                            uint32_t len, bool from_dev, uint32_t *err)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    uint32_t generation = s->generation;
    g_autofree uint8_t *buf = g_malloc(len);
    MemTxResult res;

    if (from_dev) {
        memcpy(buf, (uint8_t *)memory_region_get_ram_ptr(s->mem) + off, len);
        res = pci_dma_write(pdev, bus, buf, len);
    } else {
        res = pci_dma_read(pdev, bus, buf, len);
    }
    if (s->generation != generation) {
        trace_barmap_dma_abandoned(bus, off, len);
        return false;
    }
    if (res != MEMTX_OK) {
        *err = BARMAP_DMA_ERR_BUS;
    } else if (!from_dev) {
        memcpy((uint8_t *)memory_region_get_ram_ptr(s->mem) + off, buf, len);
        memory_region_set_dirty(s->mem, off, len);
    }
    return true;
}

/*
 * The transfer itself, from the timer.  Everything is checked again (the
 * guest may have dropped bus mastering or the host injected a fault in
 * between) and the whole bus range is checked with dma_memory_valid() before
 * a byte moves, so a refused transfer copies nothing.  BAR2 is only touched
 * inside [off, off + len).  A reference on the device is held across the
 * copy: a transfer that unplugs its own device ends with the object still
 * allocated, and is then dropped (barmap_dma_copy).
 */
static void barmap_dma_run(void *opaque)
{
    BarmapState *s = opaque;
    AddressSpace *as = pci_get_address_space(PCI_DEVICE(s));
    uint64_t bus = s->cur_bus, off = s->cur_off;
    uint32_t len = s->cur_len, cmd = s->cur_cmd;
    bool from_dev = cmd & BARMAP_DMA_CMD_FROM_DEV;
    DMADirection dir = from_dev ? DMA_DIRECTION_FROM_DEVICE
                                : DMA_DIRECTION_TO_DEVICE;
    uint32_t err;

    if (!(s->dma_status & BARMAP_DMA_STATUS_BUSY)) {
        return;
    }
    err = barmap_dma_check(s, bus, off, len);
    if (!err && !dma_memory_valid(as, bus, len, dir, MEMTXATTRS_UNSPECIFIED)) {
        err = BARMAP_DMA_ERR_BUS;
    }
    if (!err) {
        bool current;

        object_ref(OBJECT(s));
        current = barmap_dma_copy(s, bus, off, len, from_dev, &err);
        /* when current, the device is still realized: not the last ref */
        object_unref(OBJECT(s));
        if (!current) {
            return;
        }
    }
    if (err) {
        trace_barmap_dma_error(bus, off, len, cmd, err);
    } else {
        trace_barmap_dma_done(bus, off, len, cmd);
    }
    barmap_dma_finish(s, cmd, err, false);
}

/* BAR0 */

static uint32_t barmap_caps(BarmapState *s)
{
    return BARMAP_CAP_DMA | BARMAP_CAP_INTX | BARMAP_CAP_FAULT |
           (s->has_msi ? BARMAP_CAP_MSI : 0) |
           (s->hostmem ? BARMAP_CAP_MEMDEV : 0);
}

static uint32_t barmap_status(BarmapState *s)
{
    uint32_t st = 0;

    if (!(s->fault & BARMAP_FAULT_NO_DECODE)) {
        st |= BARMAP_STATUS_MEM_DECODED;
    }
    if (s->dma_status & BARMAP_DMA_STATUS_BUSY) {
        st |= BARMAP_STATUS_DMA_BUSY;
    }
    if (s->has_msi && msi_enabled(PCI_DEVICE(s))) {
        st |= BARMAP_STATUS_MSI_ENABLED;
    }
    return st;
}

static uint32_t barmap_reg_read(BarmapState *s, hwaddr addr, bool *known)
{
    *known = true;
    switch (addr) {
    case BARMAP_REG_ID:
        return BARMAP_ID_MAGIC;
    case BARMAP_REG_VERSION:
        return BARMAP_VERSION;
    case BARMAP_REG_CAPS:
        return barmap_caps(s);
    case BARMAP_REG_SCRATCH:
        return s->scratch;
    case BARMAP_REG_MEM_SIZE_LO:
        return (uint32_t)s->mem_size;
    case BARMAP_REG_MEM_SIZE_HI:
        return (uint32_t)(s->mem_size >> 32);
    case BARMAP_REG_STATUS:
        return barmap_status(s);
    case BARMAP_REG_DMA_BUS_LO:
        return (uint32_t)s->dma_bus;
    case BARMAP_REG_DMA_BUS_HI:
        return (uint32_t)(s->dma_bus >> 32);
    case BARMAP_REG_DMA_OFF_LO:
        return (uint32_t)s->dma_off;
    case BARMAP_REG_DMA_OFF_HI:
        return (uint32_t)(s->dma_off >> 32);
    case BARMAP_REG_DMA_LEN:
        return s->dma_len;
    case BARMAP_REG_DMA_CMD:
    case BARMAP_REG_IRQ_RAISE:
    case BARMAP_REG_IRQ_ACK:
        return 0;
    case BARMAP_REG_DMA_STATUS:
        return s->dma_status;
    case BARMAP_REG_IRQ_STATUS:
        return s->irq_status;
    case BARMAP_REG_IRQ_MASK:
        return s->irq_mask;
    case BARMAP_REG_FAULT:
        return s->fault;
    default:
        *known = false;
        return 0;
    }
}

static void barmap_reg_write(BarmapState *s, hwaddr addr, uint32_t val)
{
    switch (addr) {
    case BARMAP_REG_SCRATCH:
        s->scratch = val;
        break;
    case BARMAP_REG_DMA_BUS_LO:
        s->dma_bus = deposit64(s->dma_bus, 0, 32, val);
        break;
    case BARMAP_REG_DMA_BUS_HI:
        s->dma_bus = deposit64(s->dma_bus, 32, 32, val);
        break;
    case BARMAP_REG_DMA_OFF_LO:
        s->dma_off = deposit64(s->dma_off, 0, 32, val);
        break;
    case BARMAP_REG_DMA_OFF_HI:
        s->dma_off = deposit64(s->dma_off, 32, 32, val);
        break;
    case BARMAP_REG_DMA_LEN:
        s->dma_len = val;
        break;
    case BARMAP_REG_DMA_CMD:
        if (val & BARMAP_DMA_CMD_START) {
            barmap_dma_start(s, val);
        }
        break;
    case BARMAP_REG_IRQ_RAISE:
        barmap_raise_irq(s, val & BARMAP_IRQ_ALL);
        break;
    case BARMAP_REG_IRQ_ACK:
        s->irq_status &= ~val;
        barmap_update_irq(s);
        break;
    case BARMAP_REG_IRQ_MASK:
        s->irq_mask = val & BARMAP_IRQ_ALL;
        barmap_update_irq(s);
        break;
    case BARMAP_REG_FAULT:
        barmap_set_fault(s, val);
        break;
    case BARMAP_REG_ID:
    case BARMAP_REG_VERSION:
    case BARMAP_REG_CAPS:
    case BARMAP_REG_MEM_SIZE_LO:
    case BARMAP_REG_MEM_SIZE_HI:
    case BARMAP_REG_STATUS:
    case BARMAP_REG_DMA_STATUS:
    case BARMAP_REG_IRQ_STATUS:
        trace_barmap_mmio_bad("write to read-only register", addr, 4, val);
        qemu_log_mask(LOG_GUEST_ERROR,
                      "barmap: write 0x%x to read-only register 0x%" HWADDR_PRIx
                      " ignored\n", val, addr);
        break;
    default:
        trace_barmap_mmio_bad("write to unknown register", addr, 4, val);
        qemu_log_mask(LOG_GUEST_ERROR,
                      "barmap: write 0x%x to unknown register 0x%" HWADDR_PRIx
                      " ignored\n", val, addr);
        break;
    }
}

/*
 * The memory core hands us naturally aligned accesses of 1, 2, 4 or 8 bytes
 * (valid.unaligned is false).  4 bytes is a register; 8 bytes is the two
 * registers at addr (low half, first) and addr + 4 (high half, second); a
 * 1- or 2-byte read returns those bytes of the register that holds them, a
 * 1- or 2-byte write is dropped (no register takes a partial write).
 */
static uint64_t barmap_mmio_read(void *opaque, hwaddr addr, unsigned size)
{
    BarmapState *s = opaque;
    uint64_t val;
    bool known, known_hi = true;

    if (barmap_d3hot(s)) {
        /* D3hot: only config cycles are answered (Unsupported Request) */
        val = MAKE_64BIT_MASK(0, size * 8);
        trace_barmap_d3hot_access("read", addr, size, val);
        return val;
    }
    switch (size) {
    case 8:
        val = barmap_reg_read(s, addr, &known);
        val |= (uint64_t)barmap_reg_read(s, addr + 4, &known_hi) << 32;
        break;
    case 4:
        val = barmap_reg_read(s, addr, &known);
        break;
    default:
        val = barmap_reg_read(s, addr & ~3ULL, &known);
        val = extract64(val, (addr & 3) * 8, size * 8);
        break;
    }
    if (!known || !known_hi) {
        trace_barmap_mmio_bad("read of unknown register", addr, size, val);
        qemu_log_mask(LOG_GUEST_ERROR,
                      "barmap: read of unknown register 0x%" HWADDR_PRIx
                      " (size %u)\n", addr, size);
    }
    trace_barmap_mmio_read(addr, size, val);
    return val;
}

static void barmap_mmio_write(void *opaque, hwaddr addr, uint64_t val,
                              unsigned size)
{
    BarmapState *s = opaque;

    if (barmap_d3hot(s)) {
        trace_barmap_d3hot_access("write dropped", addr, size, val);
        return;
    }
    trace_barmap_mmio_write(addr, size, val);
    switch (size) {
    case 8:
        barmap_reg_write(s, addr, (uint32_t)val);
        barmap_reg_write(s, addr + 4, (uint32_t)(val >> 32));
        break;
    case 4:
        barmap_reg_write(s, addr, (uint32_t)val);
        break;
    default:
        trace_barmap_mmio_bad("partial register write", addr, size, val);
        qemu_log_mask(LOG_GUEST_ERROR,
                      "barmap: %u-byte write to 0x%" HWADDR_PRIx
                      " ignored (registers take 4 or 8 bytes)\n", size, addr);
        break;
    }
}

static const MemoryRegionOps barmap_mmio_ops = {
    .read = barmap_mmio_read,
    .write = barmap_mmio_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 1,
        .max_access_size = 8,
        .unaligned = false,
    },
    .impl = {
        .min_access_size = 1,
        .max_access_size = 8,
    },
};

/*
 * FAULT_ALL_ONES: the BAR2 overlay of a dead link.  It takes any alignment
 * (valid.unaligned: RAM does), but implements only aligned accesses: the
 * memory core then cuts an access by its address's alignment, and an access
 * that starts in BAR2's last bytes and runs past its end reaches the overlay
 * only for the bytes inside BAR2; the rest goes to whatever decodes there.
 */

static uint64_t barmap_ones_read(void *opaque, hwaddr addr, unsigned size)
{
    return UINT64_MAX;
}

static void barmap_ones_write(void *opaque, hwaddr addr, uint64_t val,
                              unsigned size)
{
}

static const MemoryRegionOps barmap_ones_ops = {
    .read = barmap_ones_read,
    .write = barmap_ones_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 1,
        .max_access_size = 8,
        .unaligned = true,
    },
    .impl = {
        .min_access_size = 1,
        .max_access_size = 8,
        .unaligned = false,
    },
};

/*
 * Config space.  Under FAULT_ALL_ONES (a dead link) the guest's config
 * cycles read all-ones and writes are dropped; only they go through these
 * hooks (pci_host_config_{read,write}_common), while QEMU itself (BAR
 * mapping, MSI, migration, reset, info pci) uses pdev->config directly and
 * so keeps the real state.
 */

static uint32_t barmap_config_read(PCIDevice *pdev, uint32_t addr, int len)
{
    BarmapState *s = BARMAP(pdev);

    if (s->fault & BARMAP_FAULT_ALL_ONES) {
        trace_barmap_config_dead("read", addr, len, 0);
        return MAKE_64BIT_MASK(0, len * 8);
    }
    return pci_default_read_config(pdev, addr, len);
}

/*
 * PMCSR: D0 and D3hot are the states there are.  A write of D1 or D2 is
 * discarded as the PM spec says for an unsupported state, the state staying
 * as it was.  No_Soft_Reset is 1, so D3hot -> D0 keeps every register, the
 * config space (BARs, COMMAND, MSI) and BAR2.
 */
static void barmap_pm_write(BarmapState *s, bool was_d3hot)
{
    uint8_t *csr = s->pdev.config + BARMAP_CFG_PM_CSR;
    uint16_t state = pci_get_word(csr) & BARMAP_PM_STATE_MASK;
    uint16_t old = was_d3hot ? BARMAP_PM_STATE_D3HOT : BARMAP_PM_STATE_D0;

    if (state != BARMAP_PM_STATE_D0 && state != BARMAP_PM_STATE_D3HOT) {
        trace_barmap_pm_refused(old, state);
        pci_word_test_and_clear_mask(csr, BARMAP_PM_STATE_MASK);
        pci_word_test_and_set_mask(csr, old);
        return;
    }
    if (state != old) {
        trace_barmap_pm(old, state);
        barmap_apply_regions(s);
    }
}

/* and MSI enable/disable moves the interrupt between INTx and MSI */
static void barmap_config_write(PCIDevice *pdev, uint32_t addr, uint32_t val,
                                int len)
{
    BarmapState *s = BARMAP(pdev);
    bool was_d3hot = barmap_d3hot(s);

    if (s->fault & BARMAP_FAULT_ALL_ONES) {
        trace_barmap_config_dead("write dropped", addr, len, val);
        return;
    }
    pci_default_write_config(pdev, addr, val, len);
    if (ranges_overlap(addr, len, BARMAP_CFG_PM_CSR, 1)) {
        barmap_pm_write(s, was_d3hot);
    }
    barmap_update_irq(s);
}

/*
 * The PM capability, in the device on QEMU 7.2 and 10.0 alike: 10.0's
 * pci_pm_init() would unmap the BARs in D3hot (reads 0 on x86), not answer
 * all-ones as a real function does, and 7.2 has no helper at all.
 */
static int barmap_pm_init(PCIDevice *pdev, Error **errp)
{
    int cap = pci_add_capability(pdev, PCI_CAP_ID_PM, BARMAP_CFG_PM,
                                 PCI_PM_SIZEOF, errp);

    if (cap < 0) {
        return cap;
    }
    pci_set_word(pdev->config + BARMAP_CFG_PM_PMC, BARMAP_PM_PMC);
    pci_set_word(pdev->config + BARMAP_CFG_PM_CSR, BARMAP_PM_NO_SOFT_RESET);
    pci_set_word(pdev->wmask + BARMAP_CFG_PM_CSR, BARMAP_PM_STATE_MASK);
    return 0;
}

/* Life cycle */

/* Whether val is a power of two in [min, max]; errp says so when not. */
static bool barmap_check_size(const char *prop, uint64_t val, uint64_t min,
                              uint64_t max, const char *what, Error **errp)
{
    if (val >= min && val <= max && is_power_of_2(val)) {
        return true;
    }
    error_setg(errp, "barmap: %s 0x%" PRIx64 " is invalid: %s must be a "
               "power of two from 0x%" PRIx64 " to 0x%" PRIx64, prop, val,
               what, min, max);
    return false;
}

/*
 * Every property is checked here, before anything is built: realize fails
 * with a message, never half-built.  Returns BAR2's effective size, 0 on
 * error.
 */
static uint64_t barmap_validate(BarmapState *s, Error **errp)
{
    uint64_t size = s->mem_size;
    uint64_t max = s->bar2_64bit ? BARMAP_MEM_SIZE_MAX : BARMAP_BAR32_SIZE_MAX;
    uint16_t class = s->class_code >> 8;

    if (s->hostmem) {
        MemoryRegion *mr;

        if (host_memory_backend_is_mapped(s->hostmem)) {
            error_setg(errp, "barmap: memdev '%s' is already in use",
                       object_get_canonical_path_component(
                           OBJECT(s->hostmem)));
            return 0;
        }
        mr = host_memory_backend_get_memory(s->hostmem);
        if (size && size != memory_region_size(mr)) {
            error_setg(errp, "barmap: size 0x%" PRIx64 " does not match the "
                       "size 0x%" PRIx64 " of memdev '%s'", size,
                       memory_region_size(mr),
                       object_get_canonical_path_component(
                           OBJECT(s->hostmem)));
            return 0;
        }
        size = memory_region_size(mr);
    } else if (!size) {
        size = BARMAP_MEM_SIZE_DEFAULT;
    }
    if (size < BARMAP_MEM_SIZE_MIN || size > max || !is_power_of_2(size)) {
        error_setg(errp, "barmap: %s 0x%" PRIx64 " is invalid: %s BAR2 size "
                   "must be a power of two from 0x%llx (4 KiB) to 0x%" PRIx64
                   " (%s)", s->hostmem ? "memdev size" : "size", size,
                   s->bar2_64bit ? "the" : "a 32-bit (bar2-64bit=off)",
                   (unsigned long long)BARMAP_MEM_SIZE_MIN, max,
                   s->bar2_64bit ? "4 GiB" : "256 MiB");
        return 0;
    }
    if (!barmap_check_size("reg-size", s->reg_size, BARMAP_REG_BAR_SIZE,
                           BARMAP_BAR32_SIZE_MAX,
                           "BAR0 (32-bit, the 4 KiB register block and "
                           "reserved space above it)", errp)) {
        return 0;
    }
    if (s->io_size &&
        !barmap_check_size("io-bar-size", s->io_size, BARMAP_IO_SIZE_MIN,
                           BARMAP_IO_SIZE_MAX, "the I/O BAR (0 for none)",
                           errp)) {
        return 0;
    }
    if (s->vendor_id == 0 || s->vendor_id == 0xffff) {
        error_setg(errp, "barmap: vendor-id 0x%04x is invalid: 0x0000 and "
                   "0xffff mean no device to the guest", s->vendor_id);
        return 0;
    }
    if (s->class_code > 0xffffff) {
        error_setg(errp, "barmap: class-code 0x%x is invalid: it is 24 bits "
                   "(base class, subclass, prog-if)", s->class_code);
        return 0;
    }
    if (class == PCI_CLASS_BRIDGE_PCI) {
        error_setg(errp, "barmap: class-code 0x%06x is invalid: a PCI-to-PCI "
                   "bridge class needs a type 1 header; barmap's is type 0 "
                   "(firmware would write bus numbers over BAR2)",
                   s->class_code);
        return 0;
    }
    return size;
}

static void barmap_set_identity(BarmapState *s)
{
    uint8_t *conf = s->pdev.config;

    pci_config_set_vendor_id(conf, s->vendor_id);
    pci_config_set_device_id(conf, s->device_id);
    pci_config_set_revision(conf, s->revision);
    pci_config_set_class(conf, s->class_code >> 8);
    pci_config_set_prog_interface(conf, s->class_code & 0xff);
    pci_set_word(conf + PCI_SUBSYSTEM_VENDOR_ID, s->subsys_vendor_id);
    pci_set_word(conf + PCI_SUBSYSTEM_ID, s->subsys_id);
    pci_config_set_interrupt_pin(conf, 1);
}

static void barmap_realize(PCIDevice *pdev, Error **errp)
{
    BarmapState *s = BARMAP(pdev);
    Error *err = NULL;
    uint64_t size = barmap_validate(s, errp);
    uint8_t bar2_type = PCI_BASE_ADDRESS_SPACE_MEMORY;
    int ret;

    if (!size) {
        return;
    }
    barmap_set_identity(s);

    /* PM first: each capability goes to the list's head, so MSI leads it */
    if (barmap_pm_init(pdev, errp) < 0) {
        return;
    }
    ret = msi_init(pdev, BARMAP_CFG_MSI, 1, true, false, &err);
    if (ret == -ENOTSUP) {
        /* The machine has no working MSI: INTx only, CAPS says so. */
        error_free(err);
        err = NULL;
        s->has_msi = false;
    } else if (ret) {
        error_propagate(errp, err);
        return;
    } else {
        s->has_msi = true;
    }

    if (s->hostmem) {
        s->mem = host_memory_backend_get_memory(s->hostmem);
        host_memory_backend_set_mapped(s->hostmem, true);
        vmstate_register_ram(s->mem, DEVICE(s));
    } else {
        memory_region_init_ram(&s->ram, OBJECT(s), "barmap.ram", size, &err);
        if (err) {
            error_propagate(errp, err);
            if (s->has_msi) {
                msi_uninit(pdev);
            }
            return;
        }
        s->mem = &s->ram;
    }
    s->mem_size = size;

    memory_region_init_io(&s->mmio, OBJECT(s), &barmap_mmio_ops, s,
                          "barmap.regs", s->reg_size);
    memory_region_init(&s->bar2, OBJECT(s), "barmap.bar2", size);
    memory_region_add_subregion(&s->bar2, 0, s->mem);
    memory_region_init_io(&s->ones, OBJECT(s), &barmap_ones_ops, s,
                          "barmap.all-ones", size);
    memory_region_add_subregion_overlap(&s->bar2, 0, &s->ones, 1);

    pci_register_bar(pdev, BARMAP_REG_BAR, PCI_BASE_ADDRESS_SPACE_MEMORY,
                     &s->mmio);
    if (s->bar2_64bit) {
        bar2_type |= PCI_BASE_ADDRESS_MEM_TYPE_64;
    }
    if (s->bar2_prefetch) {
        bar2_type |= PCI_BASE_ADDRESS_MEM_PREFETCH;
    }
    pci_register_bar(pdev, BARMAP_MEM_BAR, bar2_type, &s->bar2);
    if (s->io_size) {
        /* the same registers, the same accessors: an I/O view of BAR0 */
        memory_region_init_io(&s->io, OBJECT(s), &barmap_mmio_ops, s,
                              "barmap.io", s->io_size);
        pci_register_bar(pdev, BARMAP_IO_BAR, PCI_BASE_ADDRESS_SPACE_IO,
                         &s->io);
    }

    timer_init_ns(&s->dma_timer, QEMU_CLOCK_VIRTUAL, barmap_dma_run, s);
    barmap_apply_fault(s);
}

static void barmap_exit(PCIDevice *pdev)
{
    BarmapState *s = BARMAP(pdev);

    s->generation++;
    timer_del(&s->dma_timer);
    pci_set_irq(pdev, 0);
    if (s->has_msi) {
        msi_uninit(pdev);
    }
    vmstate_unregister_ram(s->mem, DEVICE(s));
    /*
     * A subregion holds a reference on its owner, this device: without
     * taking them out the device would never be finalized (and a hot
     * unplug would never complete with DEVICE_DELETED).
     */
    memory_region_del_subregion(&s->bar2, &s->ones);
    memory_region_del_subregion(&s->bar2, s->mem);
    if (s->hostmem) {
        /* Hand the backend back as we found it, free for another user. */
        memory_region_set_enabled(s->mem, true);
        host_memory_backend_set_mapped(s->hostmem, false);
    }
}

/*
 * Device reset: registers to their documented reset values, a running DMA
 * is abandoned, the function back in D0 (the PCI core resets the rest of
 * config space).  BAR2 contents and FAULT (host-side fault injection, which
 * may have been given on the command line) survive a reset.
 */
static void barmap_reset(DeviceState *dev)
{
    BarmapState *s = BARMAP(dev);

    trace_barmap_reset();
    pci_word_test_and_clear_mask(s->pdev.config + BARMAP_CFG_PM_CSR,
                                 BARMAP_PM_STATE_MASK);
    barmap_apply_regions(s);
    s->generation++;
    timer_del(&s->dma_timer);
    s->scratch = 0;
    s->dma_bus = 0;
    s->dma_off = 0;
    s->dma_len = 0;
    s->dma_status = 0;
    s->cur_bus = 0;
    s->cur_off = 0;
    s->cur_len = 0;
    s->cur_cmd = 0;
    s->irq_status = 0;
    s->irq_mask = 0;
    s->irq_pending = false;
    barmap_update_irq(s);
}

static int barmap_post_load(void *opaque, int version_id)
{
    BarmapState *s = opaque;

    s->fault &= BARMAP_FAULT_ALL;
    s->irq_status &= BARMAP_IRQ_ALL;
    s->irq_mask &= BARMAP_IRQ_ALL;
    if (s->cur_len > BARMAP_DMA_MAX_LEN) {
        return -EINVAL;
    }
    /* the fault and the D-state (PMCSR came with config space) in force */
    barmap_apply_regions(s);
    return 0;
}

static const VMStateDescription vmstate_barmap = {
    .name = "barmap",
    .version_id = 1,
    .minimum_version_id = 1,
    .post_load = barmap_post_load,
    .fields = (VMStateField[]) {
        VMSTATE_PCI_DEVICE(pdev, BarmapState),
        VMSTATE_UINT32(scratch, BarmapState),
        VMSTATE_UINT64(dma_bus, BarmapState),
        VMSTATE_UINT64(dma_off, BarmapState),
        VMSTATE_UINT32(dma_len, BarmapState),
        VMSTATE_UINT32(dma_status, BarmapState),
        VMSTATE_UINT32(irq_status, BarmapState),
        VMSTATE_UINT32(irq_mask, BarmapState),
        VMSTATE_UINT32(fault, BarmapState),
        VMSTATE_UINT64(cur_bus, BarmapState),
        VMSTATE_UINT64(cur_off, BarmapState),
        VMSTATE_UINT32(cur_len, BarmapState),
        VMSTATE_UINT32(cur_cmd, BarmapState),
        VMSTATE_BOOL(irq_pending, BarmapState),
        VMSTATE_TIMER(dma_timer, BarmapState),
        VMSTATE_END_OF_LIST()
    },
};

static BARMAP_PROPS_CONST Property barmap_properties[] = {
    DEFINE_PROP_SIZE("size", BarmapState, mem_size, 0),
    DEFINE_PROP_UINT64("dma-mask", BarmapState, dma_mask, UINT64_MAX),
    DEFINE_PROP_UINT32("dma-delay-ns", BarmapState, dma_delay_ns,
                       BARMAP_DMA_DELAY_NS_DEFAULT),
    DEFINE_PROP_LINK("memdev", BarmapState, hostmem, TYPE_MEMORY_BACKEND,
                     HostMemoryBackend *),
    /* identity and layout, to pose as another card */
    DEFINE_PROP_UINT16("vendor-id", BarmapState, vendor_id,
                       BARMAP_PCI_VENDOR_ID),
    DEFINE_PROP_UINT16("device-id", BarmapState, device_id,
                       BARMAP_PCI_DEVICE_ID),
    DEFINE_PROP_UINT16("subsystem-vendor-id", BarmapState, subsys_vendor_id,
                       BARMAP_PCI_SUBVENDOR_ID),
    DEFINE_PROP_UINT16("subsystem-id", BarmapState, subsys_id,
                       BARMAP_PCI_SUBDEVICE_ID),
    DEFINE_PROP_UINT32("class-code", BarmapState, class_code,
                       BARMAP_PCI_CLASS_CODE),
    DEFINE_PROP_UINT8("revision", BarmapState, revision, BARMAP_PCI_REVISION),
    DEFINE_PROP_SIZE("reg-size", BarmapState, reg_size, BARMAP_REG_BAR_SIZE),
    DEFINE_PROP_BOOL("bar2-64bit", BarmapState, bar2_64bit, true),
    DEFINE_PROP_BOOL("bar2-prefetch", BarmapState, bar2_prefetch, true),
    DEFINE_PROP_SIZE("io-bar-size", BarmapState, io_size, 0),
    BARMAP_PROPS_END
};

/*
 * fault-* are plain QOM properties, not qdev ones, so that they can be
 * changed after realize (QMP qom-set) and take effect at once.  They are
 * views of the FAULT register bits.
 */
#define BARMAP_FAULT_PROP(fn, bit)                                          \
static bool barmap_get_##fn(Object *obj, Error **errp)                      \
{                                                                           \
    return BARMAP(obj)->fault & (bit);                                      \
}                                                                           \
static void barmap_set_##fn(Object *obj, bool value, Error **errp)          \
{                                                                           \
    BarmapState *s = BARMAP(obj);                                           \
    barmap_set_fault(s, value ? (s->fault | (bit)) : (s->fault & ~(bit)));  \
}

BARMAP_FAULT_PROP(fault_all_ones, BARMAP_FAULT_ALL_ONES)
BARMAP_FAULT_PROP(fault_no_decode, BARMAP_FAULT_NO_DECODE)
BARMAP_FAULT_PROP(fault_dma_error, BARMAP_FAULT_DMA_ERROR)
BARMAP_FAULT_PROP(fault_irq_lost, BARMAP_FAULT_IRQ_LOST)

static void barmap_class_init(ObjectClass *klass, BARMAP_CLASS_DATA data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);

    k->realize = barmap_realize;
    k->exit = barmap_exit;
    k->config_read = barmap_config_read;
    k->config_write = barmap_config_write;
    k->vendor_id = BARMAP_PCI_VENDOR_ID;
    k->device_id = BARMAP_PCI_DEVICE_ID;
    k->subsystem_vendor_id = BARMAP_PCI_SUBVENDOR_ID;
    k->subsystem_id = BARMAP_PCI_SUBDEVICE_ID;
    k->class_id = BARMAP_PCI_CLASS;
    k->revision = BARMAP_PCI_REVISION;
    dc->desc = "barmap: BAR memory mapping test device";
    dc->vmsd = &vmstate_barmap;
    barmap_set_reset(dc, barmap_reset);
    device_class_set_props(dc, barmap_properties);
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);

    object_class_property_add_bool(klass, "fault-all-ones",
                                   barmap_get_fault_all_ones,
                                   barmap_set_fault_all_ones);
    object_class_property_set_description(klass, "fault-all-ones",
        "BAR2 and config space read all-ones and drop writes (dead link)");
    object_class_property_add_bool(klass, "fault-no-decode",
                                   barmap_get_fault_no_decode,
                                   barmap_set_fault_no_decode);
    object_class_property_set_description(klass, "fault-no-decode",
        "BAR2 is not decoded: reads 0, writes dropped");
    object_class_property_add_bool(klass, "fault-dma-error",
                                   barmap_get_fault_dma_error,
                                   barmap_set_fault_dma_error);
    object_class_property_set_description(klass, "fault-dma-error",
        "every DMA request fails with ERR_INJECTED and copies nothing");
    object_class_property_add_bool(klass, "fault-irq-lost",
                                   barmap_get_fault_irq_lost,
                                   barmap_set_fault_irq_lost);
    object_class_property_set_description(klass, "fault-irq-lost",
        "interrupt status is set but never delivered");
}

static const TypeInfo barmap_info = {
    .name = TYPE_BARMAP,
    .parent = TYPE_PCI_DEVICE,
    .instance_size = sizeof(BarmapState),
    .class_init = barmap_class_init,
    .interfaces = (InterfaceInfo[]) {
        { INTERFACE_CONVENTIONAL_PCI_DEVICE },
        { },
    },
};

static void barmap_register_types(void)
{
    type_register_static(&barmap_info);
}

type_init(barmap_register_types)
