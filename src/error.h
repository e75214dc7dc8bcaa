/* Filling a vmlet_error: one line that names the field or file and says
 * what to do. */
#ifndef VMLET_ERROR_H
#define VMLET_ERROR_H

#include "vmlet.h"

__attribute__((format(printf, 3, 4))) int set_error(vmlet_error *err, vmlet_error_code code,
                                                    const char *fmt, ...);

#endif
