/*
 * barmap's entries in QEMU's generic-fuzz target list: scripts/qemu.sh copies
 * this file to tests/qtest/fuzz/ and includes it at the top of
 * predefined_configs[] in generic_fuzz_configs.h, so qemu-fuzz-x86_64 knows
 * --fuzz-target=generic-fuzz-barmap and generic-fuzz-barmap-q35.
 *
 * The fuzzer reaches every MemoryRegion whose name matches .objects (BAR0
 * "barmap.regs", BAR2 "barmap.bar2"/"barmap.ram"/"barmap.all-ones", BAR4
 * "barmap.io"), the device's PCI config space (the PM capability's PMCSR,
 * the dead link's config hooks), and answers its DMA reads with its own
 * bytes.  BAR2 is kept small so that random DMA offsets and lengths land
 * inside it.  pc has the I/O BAR; q35 the other layout (a larger BAR0, a
 * 32-bit non-prefetchable BAR2) and another identity.
 */
    {
        .name = "barmap",
        .args = "-machine pc -nodefaults "
        "-device barmap,size=64K,io-bar-size=256",
        .objects = "barmap*",
    }, {
        .name = "barmap-q35",
        .args = "-machine q35 -nodefaults "
        "-device pcie-root-port,id=rp,chassis=1,slot=1 "
        "-device barmap,bus=rp,size=64K,reg-size=64K,bar2-64bit=off,"
        "bar2-prefetch=off,vendor-id=0x8086,device-id=0x10d3",
        .objects = "barmap*",
    },
