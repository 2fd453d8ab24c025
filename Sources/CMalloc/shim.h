// glibc's malloc tuning (mallopt); part of libc, nothing to link.
#include <malloc.h>
