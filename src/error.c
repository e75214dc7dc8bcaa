/* Error reporting shared by the library. */
#include <stdarg.h>
#include <stdio.h>
#include "error.h"

/* Always returns -1 so callers can write `return set_error(...)`. */
int set_error(vmlet_error *err, vmlet_error_code code, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}
