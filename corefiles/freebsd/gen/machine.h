/*
 * The simulated amd64 machine the fixture is laid out in: its physical
 * memory, which pages a minidump would hold, and the kernel's 4-level page
 * tables (4 KiB, 2 MiB and 1 GiB pages) through which the generator writes at
 * kernel virtual addresses.
 */
#ifndef KQ_FBSD_GEN_MACHINE_H
#define KQ_FBSD_GEN_MACHINE_H

#include <stddef.h>
#include <stdint.h>

#define PAGE_SIZE 4096u
#define NBPDR (2ull << 20)
#define NBPDP (1ull << 30)

/* Page-table entry bits (amd64/include/pmap.h). */
#define PG_V 0x001ull
#define PG_RW 0x002ull
#define PG_A 0x020ull
#define PG_M 0x040ull
#define PG_PS 0x080ull
#define PG_G 0x100ull
#define PG_NX (1ull << 63)
#define PG_FRAME 0x000ffffffffff000ull

/* Physical memory: 16 MiB, of which dump_avail leaves out page 0 and the
 * legacy hole below 1 MiB, as on a PC. */
#define RAM_SIZE (16ull << 20)

#define PF_MINIDUMP 0x1			/* in the minidump's page bitmap */
#define PF_NODUMP 0x2			/* PG_NODUMP: never dumped in a minidump */

struct machine {
	uint8_t *ram;			/* RAM_SIZE bytes */
	uint8_t *page_flags;		/* PF_* per page */
	uint64_t dump_avail[6];		/* [start, end) pairs, then 0, 0 */
	uint64_t boot_next;		/* early allocations, inside the kernel's 2 MiB pages */
	uint64_t boot_end;
	uint64_t next;			/* later allocations (kmem, UMA) */
	uint64_t pml4;			/* KPML4phys */
};

void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

void machine_init(struct machine *m);
int pa_in_dump_avail(const struct machine *m, uint64_t pa);

/* A zeroed physical page from the boot region or from later memory. */
uint64_t boot_page(struct machine *m);
uint64_t alloc_page(struct machine *m);

uint8_t *pa_ptr(struct machine *m, uint64_t pa, size_t len);

/* Mappings in the kernel page tables. */
void map_4k(struct machine *m, uint64_t va, uint64_t pa, uint64_t flags);
void map_2m(struct machine *m, uint64_t va, uint64_t pa, uint64_t flags);
void map_1g(struct machine *m, uint64_t va, uint64_t pa, uint64_t flags);

/* The physical address behind va; dies if unmapped. */
uint64_t kva_to_pa(struct machine *m, uint64_t va);
int kva_mapped(struct machine *m, uint64_t va);
void kwrite(struct machine *m, uint64_t va, const void *src, size_t len);
void kread(struct machine *m, uint64_t va, void *dst, size_t len);
void kwrite_u64(struct machine *m, uint64_t va, uint64_t v);
uint64_t kread_u64(struct machine *m, uint64_t va);

/* What a minidump holds: pages added explicitly (dump_add_page, as UMA
 * does for direct-map allocations), and then what minidumpsys() adds: every
 * dumpable page mapped from VM_MIN_KERNEL_ADDRESS up and the page-table
 * pages of 4 KiB mappings. Dumpable: in dump_avail and not PF_NODUMP. */
void dump_add_page(struct machine *m, uint64_t pa);
void mark_nodump(struct machine *m, uint64_t pa);
void mark_minidump_pages(struct machine *m);
int page_in_minidump(const struct machine *m, uint64_t pa);

/* The end of the kernel address space a minidump describes: the page
 * directories of every 1 GiB from VM_MIN_KERNEL_ADDRESS up to the one
 * holding KERNBASE. */
#define MINIDUMP_KVA_END 0xffffffffc0000000ull
/* The page directory of the 1 GiB at va, as minidumpsys() writes it: the real
 * one, 512 2 MiB entries for a 1 GiB page, or zeros. */
void minidump_pd_page(struct machine *m, uint64_t va, uint64_t pd[512]);

#endif
