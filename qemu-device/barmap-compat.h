/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * barmap: the differences between the QEMU versions barmap builds against.
 *
 * Every QEMU version test of the device lives here, nowhere else.  Tested
 * with QEMU 7.2 (Debian 12 "bookworm") and QEMU 10.0 (Debian 13 "trixie").
 *
 * QEMU_VERSION_MAJOR comes from config-host.h, which "qemu/osdep.h" includes
 * first thing in every QEMU tree since 5.x (meson.build sets it from
 * VERSION), so include this header right after "qemu/osdep.h".
 */
#ifndef BARMAP_COMPAT_H
#define BARMAP_COMPAT_H

#ifndef QEMU_VERSION_MAJOR
#error "include qemu/osdep.h before barmap-compat.h"
#endif

/* True when building against QEMU maj.min or later. */
#define BARMAP_QEMU_AT_LEAST(maj, min)                                      \
    (QEMU_VERSION_MAJOR > (maj) ||                                          \
     (QEMU_VERSION_MAJOR == (maj) && QEMU_VERSION_MINOR >= (min)))

/* 8.0 split struct PCIDevice out of hw/pci/pci.h into hw/pci/pci_device.h. */
#include "hw/pci/pci.h"
#if BARMAP_QEMU_AT_LEAST(8, 0)
#include "hw/pci/pci_device.h"
#endif

/* 10.0 renamed include/sysemu to include/system. */
#if BARMAP_QEMU_AT_LEAST(10, 0)
#include "system/hostmem.h"
#include "system/dma.h"
#else
#include "sysemu/hostmem.h"
#include "sysemu/dma.h"
#endif

/*
 * 10.0 dropped DEFINE_PROP_END_OF_LIST (device_class_set_props() counts the
 * array itself) and wants the array const; 7.2 needs the terminator and a
 * mutable array.
 */
#if BARMAP_QEMU_AT_LEAST(10, 0)
#define BARMAP_PROPS_CONST const
#define BARMAP_PROPS_END
#else
#define BARMAP_PROPS_CONST
/* an array element: cannot be parenthesized (checkpatch false positive) */
#define BARMAP_PROPS_END DEFINE_PROP_END_OF_LIST(),
#endif

/*
 * 10.1 made the class_init data pointer const; 7.2 and 10.0 pass void *.
 * Use: static void x_class_init(ObjectClass *klass, BARMAP_CLASS_DATA data)
 */
#if BARMAP_QEMU_AT_LEAST(10, 1)
#define BARMAP_CLASS_DATA const void *
#else
#define BARMAP_CLASS_DATA void *
#endif

/* 9.2 replaced DeviceClass::reset with device_class_set_legacy_reset(). */
#if BARMAP_QEMU_AT_LEAST(9, 2)
#define barmap_set_reset(dc, fn) device_class_set_legacy_reset((dc), (fn))
#else
#define barmap_set_reset(dc, fn) ((dc)->reset = (fn))
#endif

#endif /* BARMAP_COMPAT_H */
