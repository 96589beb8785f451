#!/usr/bin/env bash
# The virt machine's device tree with barmap's reserved memory added (dtc), for -dtb:
#   /reserved-memory/barmap@ADDR      compatible "barmap,reserved", no-map: the driver's
#                                     reserved strategies (reserved_base= not needed)
#   /reserved-memory/barmap-dma@ADDR  a shared-dma-pool, no-map, that the device's node
#                                     names in memory-region: its coherent buffers
#   PCIE/pci@1,0/barmap@0,0           the device behind the root port at 00:01.0
#
#   scripts/arm64-dtb.sh OUT.dtb QEMU -M virt,... [the machine's other options]
#
# QEMU generates the tree (-machine dumpdtb=), so it is dumped from the same options the
# guest boots with (memory size, GIC, devices).  BARMAP_DT_RESERVED and BARMAP_DT_POOL
# (ADDR:SIZE, hex) move the regions; the defaults sit at the top of a 1 GiB guest's RAM.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '8p' "$0" >&2; exit 2; }
out=$1 qemu=$2
shift 2
reserved=${BARMAP_DT_RESERVED:-0x7e000000:0x1000000}
pool=${BARMAP_DT_POOL:-0x7c000000:0x2000000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$qemu" "$@" -machine dumpdtb="$tmp/virt.dtb" >"$tmp/qemu.log" 2>&1 ||
	{ echo "arm64-dtb: QEMU could not dump its device tree: $(tail -n1 "$tmp/qemu.log")" >&2; exit 1; }
dtc -q -I dtb -O dts -o "$tmp/virt.dts" "$tmp/virt.dtb"
# the PCIe host (gpex: compatible "pci-host-ecam-generic"), by its node name
pcie=$(awk '/^\t[a-z]+@[0-9a-f]+ \{/{node=$1} /compatible = "pci-host-ecam-generic"/{print node; exit}' \
	"$tmp/virt.dts")
[ -n "$pcie" ] || { echo "arm64-dtb: no pci-host-ecam-generic node in QEMU's tree" >&2; exit 1; }
cell() { printf '0x%x 0x%x' $(($1 >> 32)) $(($1 & 0xffffffff)); }
raddr=${reserved%%:*} rsize=${reserved##*:} paddr=${pool%%:*} psize=${pool##*:}
cat >>"$tmp/virt.dts" <<EOD

/ {
	reserved-memory {
		#address-cells = <2>;
		#size-cells = <2>;
		ranges;
		barmap@${raddr#0x} {
			compatible = "barmap,reserved";
			reg = <$(cell "$raddr") $(cell "$rsize")>;
			no-map;
		};
		barmap_pool: barmap-dma@${paddr#0x} {
			compatible = "shared-dma-pool";
			reg = <$(cell "$paddr") $(cell "$psize")>;
			no-map;
		};
	};
	$pcie {
		/* the root port at 00:01.0 (reg: devfn << 8), the device at 0.0 of its bus */
		pci@1,0 {
			reg = <0x800 0x0 0x0 0x0 0x0>;
			#address-cells = <3>;
			#size-cells = <2>;
			device_type = "pci";
			ranges;
			barmap@0,0 {
				reg = <0x10000 0x0 0x0 0x0 0x0>;
				memory-region = <&barmap_pool>;
			};
		};
	};
};
EOD
mkdir -p "$(dirname "$out")"
dtc -q -I dts -O dtb -o "$out" "$tmp/virt.dts" ||
	{ echo "arm64-dtb: dtc refused the edited tree" >&2; exit 1; }
echo "$out"
