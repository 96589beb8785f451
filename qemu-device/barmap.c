/* placeholder */
#include "qemu/osdep.h"
