/* How much memory this host has, for vmlet_config_validate(). A file of
 * its own so that unit tests of config.c can link a pretend host instead. */
#include <sys/sysinfo.h>
#include "config.h"

uint64_t host_memory_bytes(void)
{
    struct sysinfo si;
    if (sysinfo(&si) < 0)
        return 0;
    return ((uint64_t)si.totalram + si.totalswap) * si.mem_unit;
}
