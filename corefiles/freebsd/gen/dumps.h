/*
 * The two forms of a FreeBSD amd64 kernel dump, written from the machine:
 *  - the minidump (minidumpsys(), format version 3 of FreeBSD 13/14):
 *    header page, message buffer, dump_avail, page bitmap (one bit per page
 *    of dump_avail's ranges), the kernel's page directories from
 *    VM_MIN_KERNEL_ADDRESS (one page per 1 GiB), then the pages the bitmap
 *    names, in order;
 *  - the full dump (dumpsys_generic()): an ELF core, OS ABI "standalone",
 *    one PT_LOAD per dump_avail range (p_vaddr = p_paddr = its physical
 *    start), page aligned, no notes.
 * Both as savecore(8) leaves them: without the kerneldumpheader blocks.
 */
#ifndef KQ_FBSD_GEN_DUMPS_H
#define KQ_FBSD_GEN_DUMPS_H

#include "machine.h"
#include "scenario.h"

void write_minidump(struct machine *m, const struct scenario *s, const char *path);
void write_elf_dump(struct machine *m, const char *path);

#endif
