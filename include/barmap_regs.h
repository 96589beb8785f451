/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * barmap PCI device: the register map.
 *
 * This is the one source of truth for the device ABI.  It is included by the
 * QEMU device model (qemu-device/barmap.c), by the Linux driver
 * (guest-driver/barmap.c) and parsed by the Python harness
 * (harness/barmap/abi.py), which understands only lines of the form
 * "#define BARMAP_NAME <integer expression>" built from integers, other
 * BARMAP_ names, parentheses, "<<", "|", "+", "-", "~" and "U"/"ULL" suffixes.
 * Keep it that way.  docs/device.md describes every register in words.
 */
#ifndef BARMAP_REGS_H
#define BARMAP_REGS_H

/* PCI identity */
#define BARMAP_PCI_VENDOR_ID		0x1234	/* the test vendor edu uses */
#define BARMAP_PCI_DEVICE_ID		0xba12
#define BARMAP_PCI_SUBVENDOR_ID		0x1af4
#define BARMAP_PCI_SUBDEVICE_ID		0x1100
#define BARMAP_PCI_CLASS		0x0580	/* memory controller, other */
#define BARMAP_PCI_REVISION		0x01
/* the defaults of the vendor-id, device-id, subsystem-*, class-code, revision properties */
#define BARMAP_PCI_CLASS_CODE		(BARMAP_PCI_CLASS << 8)	/* with prog-if 0 */

/* Config space: fixed capability offsets (MSI first in the list, then PM) */
#define BARMAP_CFG_MSI			0x40	/* MSI, 64-bit, 1 vector, no masking */
#define BARMAP_CFG_PM			0x50	/* PCI power management */
#define BARMAP_CFG_PM_PMC		(BARMAP_CFG_PM + 2)	/* PMC: version 3, D3hot only, no PME */
#define BARMAP_CFG_PM_CSR		(BARMAP_CFG_PM + 4)	/* PMCSR: bits 1..0 the D-state */
#define BARMAP_PM_PMC			0x0003	/* PM spec 1.2; no D1, D2, PME, DSI */
#define BARMAP_PM_STATE_MASK		0x0003
#define BARMAP_PM_STATE_D0		0
#define BARMAP_PM_STATE_D3HOT		3
#define BARMAP_PM_NO_SOFT_RESET		0x0008	/* PMCSR bit 3, RO 1: D3hot -> D0 keeps all state */

/* BARs */
#define BARMAP_REG_BAR			0	/* 32-bit MMIO, registers */
#define BARMAP_MEM_BAR			2	/* 64-bit prefetchable by default, RAM */
#define BARMAP_IO_BAR			4	/* optional (io-bar-size): the registers in I/O space */
#define BARMAP_REG_BAR_SIZE		0x1000	/* the register block; reg-size's default and minimum */
#define BARMAP_BAR32_SIZE_MAX		0x10000000	/* 256 MiB: the largest 32-bit memory BAR */
#define BARMAP_IO_SIZE_MIN		0x4
#define BARMAP_IO_SIZE_MAX		0x100	/* 256 bytes, the PCI limit for an I/O BAR */
#define BARMAP_MEM_SIZE_DEFAULT		0x1000000	/* 16 MiB */
#define BARMAP_MEM_SIZE_MIN		0x1000
#define BARMAP_MEM_SIZE_MAX		0x100000000ULL	/* 4 GiB */

/* Identification */
#define BARMAP_ID_MAGIC			0x6261726dU	/* "barm" */
#define BARMAP_VERSION_MAJOR		1
#define BARMAP_VERSION_MINOR		0
#define BARMAP_VERSION			((BARMAP_VERSION_MAJOR << 16) | BARMAP_VERSION_MINOR)

/* BAR0 register offsets (all 32-bit, little endian) */
#define BARMAP_REG_ID			0x00	/* RO: BARMAP_ID_MAGIC */
#define BARMAP_REG_VERSION		0x04	/* RO: BARMAP_VERSION */
#define BARMAP_REG_CAPS			0x08	/* RO: BARMAP_CAP_* */
#define BARMAP_REG_SCRATCH		0x0c	/* RW: no side effect */
#define BARMAP_REG_MEM_SIZE_LO		0x10	/* RO: BAR2 size, low 32 bits */
#define BARMAP_REG_MEM_SIZE_HI		0x14	/* RO: BAR2 size, high 32 bits */
#define BARMAP_REG_STATUS		0x18	/* RO: BARMAP_STATUS_* */
#define BARMAP_REG_DMA_BUS_LO		0x20	/* RW: DMA bus address, low */
#define BARMAP_REG_DMA_BUS_HI		0x24	/* RW: DMA bus address, high */
#define BARMAP_REG_DMA_OFF_LO		0x28	/* RW: DMA offset in BAR2, low */
#define BARMAP_REG_DMA_OFF_HI		0x2c	/* RW: DMA offset in BAR2, high */
#define BARMAP_REG_DMA_LEN		0x30	/* RW: DMA length in bytes */
#define BARMAP_REG_DMA_CMD		0x34	/* WO: BARMAP_DMA_CMD_*, reads 0 */
#define BARMAP_REG_DMA_STATUS		0x38	/* RO: BARMAP_DMA_STATUS_* */
#define BARMAP_REG_IRQ_STATUS		0x40	/* RO: pending BARMAP_IRQ_* */
#define BARMAP_REG_IRQ_RAISE		0x44	/* WO: set bits in IRQ_STATUS */
#define BARMAP_REG_IRQ_ACK		0x48	/* WO: clear bits in IRQ_STATUS */
#define BARMAP_REG_IRQ_MASK		0x4c	/* RW: enabled BARMAP_IRQ_* */
#define BARMAP_REG_FAULT		0x50	/* RW: BARMAP_FAULT_* */

/* BARMAP_REG_CAPS bits */
#define BARMAP_CAP_DMA			(1U << 0)
#define BARMAP_CAP_INTX			(1U << 1)
#define BARMAP_CAP_MSI			(1U << 2)
#define BARMAP_CAP_MEMDEV		(1U << 3)	/* BAR2 is a host memory backend */
#define BARMAP_CAP_FAULT		(1U << 4)

/* BARMAP_REG_STATUS bits */
#define BARMAP_STATUS_MEM_DECODED	(1U << 0)	/* BAR2 answers accesses */
#define BARMAP_STATUS_DMA_BUSY		(1U << 1)
#define BARMAP_STATUS_MSI_ENABLED	(1U << 2)

/* BARMAP_REG_DMA_CMD bits */
#define BARMAP_DMA_CMD_START		(1U << 0)
#define BARMAP_DMA_CMD_FROM_DEV		(1U << 1)	/* BAR2 -> bus; clear: bus -> BAR2 */
#define BARMAP_DMA_CMD_IRQ		(1U << 2)	/* raise BARMAP_IRQ_DMA_* on completion */

/* BARMAP_REG_DMA_STATUS: bits 0..7 flags, bits 8..15 error code */
#define BARMAP_DMA_STATUS_BUSY		(1U << 0)
#define BARMAP_DMA_STATUS_DONE		(1U << 1)
#define BARMAP_DMA_STATUS_ERROR		(1U << 2)
#define BARMAP_DMA_STATUS_ERR_SHIFT	8
#define BARMAP_DMA_STATUS_ERR_MASK	(0xffU << BARMAP_DMA_STATUS_ERR_SHIFT)

/* DMA error codes, in BARMAP_REG_DMA_STATUS bits 8..15 */
#define BARMAP_DMA_ERR_NONE		0
#define BARMAP_DMA_ERR_LEN		1	/* length 0 or above BARMAP_DMA_MAX_LEN */
#define BARMAP_DMA_ERR_RANGE		2	/* offset + length beyond BAR2 */
#define BARMAP_DMA_ERR_MASK		3	/* bus range beyond the dma-mask property */
#define BARMAP_DMA_ERR_BUS		4	/* the bus access failed (unmapped, IOMMU) */
#define BARMAP_DMA_ERR_BUSY		5	/* START while a transfer runs */
#define BARMAP_DMA_ERR_INJECTED		6	/* BARMAP_FAULT_DMA_ERROR was set */
#define BARMAP_DMA_ERR_NO_MASTER	7	/* PCI bus mastering is disabled */
#define BARMAP_DMA_ERR_POWER		8	/* the function is in D3hot (PMCSR) */

#define BARMAP_DMA_MAX_LEN		0x100000	/* 1 MiB per transfer */

/* BARMAP_REG_IRQ_* bits */
#define BARMAP_IRQ_DMA_DONE		(1U << 0)
#define BARMAP_IRQ_DMA_ERROR		(1U << 1)
#define BARMAP_IRQ_SOFT			(1U << 8)	/* raised by IRQ_RAISE */
#define BARMAP_IRQ_ALL			(BARMAP_IRQ_DMA_DONE | BARMAP_IRQ_DMA_ERROR | BARMAP_IRQ_SOFT)

/* BARMAP_REG_FAULT bits (also QOM properties fault-*) */
#define BARMAP_FAULT_ALL_ONES		(1U << 0)	/* BAR2 reads all-ones, writes dropped */
#define BARMAP_FAULT_NO_DECODE		(1U << 1)	/* BAR2 not decoded: unassigned */
#define BARMAP_FAULT_DMA_ERROR		(1U << 2)	/* every DMA fails, copies nothing */
#define BARMAP_FAULT_IRQ_LOST		(1U << 3)	/* status set, line never asserted */
#define BARMAP_FAULT_ALL		(BARMAP_FAULT_ALL_ONES | BARMAP_FAULT_NO_DECODE | \
					 BARMAP_FAULT_DMA_ERROR | BARMAP_FAULT_IRQ_LOST)

#endif /* BARMAP_REGS_H */
