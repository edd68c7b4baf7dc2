#include "machine.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fbsd_types.h"

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("kq_fbsd_gen: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

void machine_init(struct machine *m)
{
	memset(m, 0, sizeof(*m));
	m->ram = calloc(1, RAM_SIZE);
	m->page_flags = calloc(1, RAM_SIZE / PAGE_SIZE);
	if (m->ram == NULL || m->page_flags == NULL)
		die("out of memory");
	m->dump_avail[0] = 0x1000;
	m->dump_avail[1] = 0x9f000;
	m->dump_avail[2] = 0x100000;
	m->dump_avail[3] = RAM_SIZE;
	/* Early allocations follow the kernel image inside its 2 MiB pages. */
	m->boot_next = 0x380000;
	m->boot_end = 0x600000;
	m->next = 0x600000;
	m->pml4 = boot_page(m);
}

int pa_in_dump_avail(const struct machine *m, uint64_t pa)
{
	for (int i = 0; m->dump_avail[i + 1] != 0; i += 2)
		if (pa >= m->dump_avail[i] && pa < m->dump_avail[i + 1])
			return 1;
	return 0;
}

uint8_t *pa_ptr(struct machine *m, uint64_t pa, size_t len)
{
	if (pa >= RAM_SIZE || len > RAM_SIZE - pa)
		die("physical address 0x%llx+%zu outside RAM", (unsigned long long)pa, len);
	return m->ram + pa;
}

uint64_t boot_page(struct machine *m)
{
	uint64_t pa = m->boot_next;

	if (pa >= m->boot_end)
		die("boot memory exhausted");
	m->boot_next += PAGE_SIZE;
	return pa;
}

uint64_t alloc_page(struct machine *m)
{
	uint64_t pa = m->next;

	/* The last MiB stays free (and the message buffer is at its end). */
	if (pa >= RAM_SIZE - (1u << 20))
		die("memory exhausted");
	m->next += PAGE_SIZE;
	return pa;
}

static uint64_t *entry(struct machine *m, uint64_t table_pa, unsigned index)
{
	return (uint64_t *)pa_ptr(m, table_pa + 8ull * index, 8);
}

/* The table the entry points to, created if absent. */
static uint64_t next_table(struct machine *m, uint64_t *e)
{
	if (*e & PG_V) {
		if (*e & PG_PS)
			die("mapping over a large page");
		return *e & PG_FRAME;
	}
	uint64_t pa = boot_page(m);
	*e = pa | PG_V | PG_RW | PG_A | PG_M;
	return pa;
}

static unsigned idx(uint64_t va, unsigned shift)
{
	return (unsigned)((va >> shift) & 511);
}

void map_4k(struct machine *m, uint64_t va, uint64_t pa, uint64_t flags)
{
	uint64_t pdp = next_table(m, entry(m, m->pml4, idx(va, 39)));
	uint64_t pd = next_table(m, entry(m, pdp, idx(va, 30)));
	uint64_t pt = next_table(m, entry(m, pd, idx(va, 21)));

	*entry(m, pt, idx(va, 12)) = (pa & PG_FRAME) | flags | PG_V | PG_A;
}

void map_2m(struct machine *m, uint64_t va, uint64_t pa, uint64_t flags)
{
	uint64_t pdp = next_table(m, entry(m, m->pml4, idx(va, 39)));
	uint64_t pd = next_table(m, entry(m, pdp, idx(va, 30)));

	if ((va | pa) & (NBPDR - 1))
		die("unaligned 2 MiB mapping");
	*entry(m, pd, idx(va, 21)) = pa | flags | PG_V | PG_PS | PG_A;
}

void map_1g(struct machine *m, uint64_t va, uint64_t pa, uint64_t flags)
{
	uint64_t pdp = next_table(m, entry(m, m->pml4, idx(va, 39)));

	if ((va | pa) & (NBPDP - 1))
		die("unaligned 1 GiB mapping");
	*entry(m, pdp, idx(va, 30)) = pa | flags | PG_V | PG_PS | PG_A;
}

/* 0 and *pa set, or -1 if unmapped. */
static int walk(struct machine *m, uint64_t va, uint64_t *pa)
{
	uint64_t e = *entry(m, m->pml4, idx(va, 39));

	if (!(e & PG_V))
		return -1;
	e = *entry(m, e & PG_FRAME, idx(va, 30));
	if (!(e & PG_V))
		return -1;
	if (e & PG_PS) {
		*pa = (e & PG_FRAME & ~(NBPDP - 1)) | (va & (NBPDP - 1));
		return 0;
	}
	e = *entry(m, e & PG_FRAME, idx(va, 21));
	if (!(e & PG_V))
		return -1;
	if (e & PG_PS) {
		*pa = (e & PG_FRAME & ~(NBPDR - 1)) | (va & (NBPDR - 1));
		return 0;
	}
	e = *entry(m, e & PG_FRAME, idx(va, 12));
	if (!(e & PG_V))
		return -1;
	*pa = (e & PG_FRAME) | (va & (PAGE_SIZE - 1));
	return 0;
}

int kva_mapped(struct machine *m, uint64_t va)
{
	uint64_t pa;

	return walk(m, va, &pa) == 0;
}

uint64_t kva_to_pa(struct machine *m, uint64_t va)
{
	uint64_t pa;

	if (walk(m, va, &pa) != 0)
		die("kernel address 0x%llx is not mapped", (unsigned long long)va);
	return pa;
}

void kwrite(struct machine *m, uint64_t va, const void *src, size_t len)
{
	const uint8_t *p = src;

	while (len > 0) {
		size_t n = PAGE_SIZE - (va & (PAGE_SIZE - 1));
		if (n > len)
			n = len;
		memcpy(pa_ptr(m, kva_to_pa(m, va), n), p, n);
		va += n;
		p += n;
		len -= n;
	}
}

void kread(struct machine *m, uint64_t va, void *dst, size_t len)
{
	uint8_t *p = dst;

	while (len > 0) {
		size_t n = PAGE_SIZE - (va & (PAGE_SIZE - 1));
		if (n > len)
			n = len;
		memcpy(p, pa_ptr(m, kva_to_pa(m, va), n), n);
		va += n;
		p += n;
		len -= n;
	}
}

void kwrite_u64(struct machine *m, uint64_t va, uint64_t v)
{
	kwrite(m, va, &v, sizeof(v));
}

uint64_t kread_u64(struct machine *m, uint64_t va)
{
	uint64_t v;

	kread(m, va, &v, sizeof(v));
	return v;
}

static int dumpable(const struct machine *m, uint64_t pa)
{
	if (pa >= RAM_SIZE || !pa_in_dump_avail(m, pa))
		return 0;
	return !(m->page_flags[pa / PAGE_SIZE] & PF_NODUMP);
}

void dump_add_page(struct machine *m, uint64_t pa)
{
	if (dumpable(m, pa))
		m->page_flags[pa / PAGE_SIZE] |= PF_MINIDUMP;
}

void mark_nodump(struct machine *m, uint64_t pa)
{
	m->page_flags[pa / PAGE_SIZE] |= PF_NODUMP;
	m->page_flags[pa / PAGE_SIZE] &= (uint8_t)~PF_MINIDUMP;
}

int page_in_minidump(const struct machine *m, uint64_t pa)
{
	return pa < RAM_SIZE && (m->page_flags[pa / PAGE_SIZE] & PF_MINIDUMP);
}

void minidump_pd_page(struct machine *m, uint64_t va, uint64_t pd[512])
{
	uint64_t e = *entry(m, m->pml4, idx(va, 39));

	memset(pd, 0, 512 * sizeof(pd[0]));
	if (!(e & PG_V))
		return;
	e = *entry(m, e & PG_FRAME, idx(va, 30));
	if (!(e & PG_V))
		return;
	if (e & PG_PS) {
		for (unsigned i = 0; i < 512; i++)
			pd[i] = e + i * NBPDR;
		return;
	}
	memcpy(pd, pa_ptr(m, e & PG_FRAME, PAGE_SIZE), PAGE_SIZE);
}

void mark_minidump_pages(struct machine *m)
{
	uint64_t pd[512];

	for (uint64_t va = VM_MIN_KERNEL_ADDRESS; va != 0 && va < MINIDUMP_KVA_END; va += NBPDP) {
		minidump_pd_page(m, va, pd);
		for (unsigned j = 0; j < 512; j++) {
			if (!(pd[j] & PG_V))
				continue;
			if (pd[j] & PG_PS) {
				uint64_t base = pd[j] & PG_FRAME & ~(NBPDR - 1);
				for (unsigned k = 0; k < 512; k++)
					dump_add_page(m, base + k * PAGE_SIZE);
				continue;
			}
			uint64_t pt = pd[j] & PG_FRAME;
			dump_add_page(m, pt);
			for (unsigned k = 0; k < 512; k++) {
				uint64_t pte = *entry(m, pt, k);
				if (pte & PG_V)
					dump_add_page(m, pte & PG_FRAME);
			}
		}
	}
}
