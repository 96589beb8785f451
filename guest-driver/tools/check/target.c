// SPDX-License-Identifier: GPL-2.0-only
#include "check.h"	/* first: _GNU_SOURCE */

#include <linux/dma-buf.h>
#include <linux/vfio.h>

/* ---- one mappable object of a row ---- */

/* the driver holding a PCI device ("" for none) */
void pci_driver_of(const char *bdf, char *out, size_t n)
{
	char link[300], target[256];
	ssize_t len;
	const char *base;

	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/driver", bdf);
	len = readlink(link, target, sizeof(target) - 1);
	if (len < 0) {
		out[0] = 0;
		return;
	}
	target[len] = 0;
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= n) {
		out[0] = 0;
		return;
	}
	memcpy(out, base, strlen(base) + 1);
}

/* --ref, or the first barmap device held by driver ("" for none) */
static int ref_device(const char *driver, char *bdf, size_t n)
{
	char path[600], v[32], d[32], drv[256];
	struct dirent *e;
	DIR *dir;

	if (opt.ref) {
		snprintf(bdf, n, "%s", opt.ref);
		return 0;
	}
	dir = opendir("/sys/bus/pci/devices");
	while (dir && (e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor",
			 e->d_name);
		if (read_text(path, v, sizeof(v), 1) < 0 || strtoul(v, NULL, 0) !=
		    BARMAP_PCI_VENDOR_ID)
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device",
			 e->d_name);
		if (read_text(path, d, sizeof(d), 1) < 0 || strtoul(d, NULL, 0) !=
		    BARMAP_PCI_DEVICE_ID)
			continue;
		pci_driver_of(e->d_name, drv, sizeof(drv));
		if (!strcmp(drv, driver) && strlen(e->d_name) < n) {
			memcpy(bdf, e->d_name, strlen(e->d_name) + 1);
			closedir(dir);
			return 0;
		}
	}
	if (dir)
		closedir(dir);
	return -ENODEV;
}

static int vfio_open(struct target *t)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	struct vfio_region_info reg = {
		.argsz = sizeof(reg), .index = VFIO_PCI_BAR2_REGION_INDEX,
	};
	char link[128], group[256], path[300];
	const char *base;
	ssize_t len;
	int dev;

	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/iommu_group",
		 t->bdf);
	len = readlink(link, group, sizeof(group) - 1);
	if (len < 0)
		return -ENODEV;	/* no IOMMU: vfio-pci cannot take it */
	group[len] = 0;
	base = strrchr(group, '/');
	snprintf(path, sizeof(path), "/dev/vfio/%s", base ? base + 1 : group);
	t->vfio_container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	t->vfio_group = open(path, O_RDWR | O_CLOEXEC);
	if (t->vfio_container < 0 || t->vfio_group < 0)
		return -errno;
	if (ioctl(t->vfio_group, VFIO_GROUP_GET_STATUS, &status))
		return -errno;
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE))
		return -EBUSY;	/* another device of the group is not vfio's */
	if (ioctl(t->vfio_group, VFIO_GROUP_SET_CONTAINER, &t->vfio_container) ||
	    ioctl(t->vfio_container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		return -errno;
	dev = ioctl(t->vfio_group, VFIO_GROUP_GET_DEVICE_FD, t->bdf);
	if (dev < 0)
		return -errno;
	t->map_fd = dev;
	if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &reg))
		return -errno;
	if (!(reg.flags & VFIO_REGION_INFO_FLAG_MMAP))
		return -EOPNOTSUPP;
	t->map_off = reg.offset;
	t->size = reg.size;
	return 0;
}

static int resource_open(struct target *t)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource2",
		 t->bdf);
	t->map_fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (t->map_fd < 0)
		return -errno;
	if (fstat(t->map_fd, &st))
		return -errno;
	t->size = st.st_size;
	return 0;
}

/* a buffer of the row's kind; a dma-buf is mapped through its own fd */
static int buffer_get(struct target *t, uint64_t want)
{
	struct barmap_export ex = { 0 };
	int ret;

	t->size = want ? want : BARMAP_BUF_SIZE_MAX;
	if (t->size > BARMAP_BUF_SIZE_MAX)
		t->size = BARMAP_BUF_SIZE_MAX;
	ret = buf_alloc_kind(t->fd, t->st->kind, t->size, &t->id);
	if (ret)
		return ret;
	t->allocated = true;
	t->size = (t->size + page_size - 1) & ~(uint64_t)(page_size - 1);
	t->map_off = (off_t)t->id * page_size;
	if (t->st->kind != BARMAP_BUF_DMABUF)
		return 0;
	ex.id = t->id;
	if (ioctl(t->fd, BARMAP_IOC_EXPORT, &ex))
		return -errno;
	t->map_fd = ex.fd;
	t->map_off = 0;
	return 0;
}

/* 0, or -errno (-ENODEV: the row has nothing to map here) */
int target_get(int fd, const struct barmap_info *info,
	       const struct strategy *st, uint64_t want, struct target *t)
{
	memset(t, 0, sizeof(*t));
	t->st = st;
	t->fd = fd;
	t->map_fd = fd;
	t->vfio_group = -1;
	t->vfio_container = -1;
	t->id = st->id;
	t->map_off = (off_t)st->id * page_size;
	switch (st->obj) {
	case OBJ_BAR:
	case OBJ_RESERVED:
		t->size = object_size(info, st->obj);
		return t->size ? 0 : -ENODEV;
	case OBJ_BUF:
		return buffer_get(t, want);
	case OBJ_VFIO:
		t->map_fd = -1;
		if (ref_device("vfio-pci", t->bdf, sizeof(t->bdf)))
			return -ENODEV;
		return vfio_open(t);
	case OBJ_RESOURCE:
		t->map_fd = -1;
		if (ref_device("", t->bdf, sizeof(t->bdf)))
			return -ENODEV;
		return resource_open(t);
	}
	return -EINVAL;
}

void *target_map(const struct target *t, size_t len, int prot)
{
	return mmap(NULL, len, prot, MAP_SHARED, t->map_fd, t->map_off);
}

void target_put(struct target *t)
{
	if (t->map_fd >= 0 && t->map_fd != t->fd)
		close(t->map_fd);
	if (t->vfio_group >= 0)
		close(t->vfio_group);
	if (t->vfio_container >= 0)
		close(t->vfio_container);
	if (t->allocated)
		buf_free(t->fd, t->id);
	t->map_fd = t->vfio_group = t->vfio_container = -1;
	t->allocated = false;
}

/*
 * Bracket CPU access to a streaming buffer: SYNC_START before, SYNC_END after
 * (a dma-buf through DMA_BUF_IOCTL_SYNC, the driver's own through its ioctl).
 */
int buf_sync(const struct target *t, bool start)
{
	struct barmap_sync s = {
		.id = t->id,
		.flags = BARMAP_SYNC_RW | (start ? BARMAP_SYNC_START : BARMAP_SYNC_END),
	};
	struct dma_buf_sync dbs = {
		.flags = DMA_BUF_SYNC_RW | (start ? DMA_BUF_SYNC_START : DMA_BUF_SYNC_END),
	};

	if (t->st->obj != OBJ_BUF)
		return 0;
	if (t->st->kind == BARMAP_BUF_DMABUF)
		return ioctl(t->map_fd, DMA_BUF_IOCTL_SYNC, &dbs) ? -errno : 0;
	return ioctl(t->fd, BARMAP_IOC_SYNC, &s) ? -errno : 0;
}
