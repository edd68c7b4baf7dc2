#include "dumps.h"

#include <gelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fbsd_types.h"

#define MINIDUMP_MAGIC "minidump FreeBSD/amd64"
#define MINIDUMP_VERSION 3

/* amd64/include/minidump.h */
struct minidumphdr {
	char magic[24];
	uint32_t version;
	uint32_t msgbufsize;
	uint32_t bitmapsize;
	uint32_t pmapsize;
	uint64_t kernbase;
	uint64_t dmapbase;
	uint64_t dmapend;
	uint32_t dumpavailsize;
};

static uint64_t round_page(uint64_t x)
{
	return (x + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
}

static void put(FILE *f, const void *p, size_t n, const char *path)
{
	if (n && fwrite(p, 1, n, f) != n)
		die("cannot write %s", path);
}

static void pad(FILE *f, uint64_t n, const char *path)
{
	static const uint8_t zero[PAGE_SIZE];

	while (n > 0) {
		size_t k = n > sizeof(zero) ? sizeof(zero) : (size_t)n;
		put(f, zero, k, path);
		n -= k;
	}
}

/* Physical page of bitmap bit `bit`: dump_avail's ranges, page by page. */
static int bit_to_pa(const struct machine *m, uint64_t bit, uint64_t *pa)
{
	for (int i = 0; m->dump_avail[i + 1] != 0; i += 2) {
		uint64_t first = m->dump_avail[i] / PAGE_SIZE;
		uint64_t n = (m->dump_avail[i + 1] + PAGE_SIZE - 1) / PAGE_SIZE - first;
		if (bit < n) {
			*pa = (first + bit) * PAGE_SIZE;
			return 1;
		}
		bit -= n;
	}
	return 0;
}

static uint64_t bitmap_bits(const struct machine *m)
{
	uint64_t bits = 0;

	for (int i = 0; m->dump_avail[i + 1] != 0; i += 2)
		bits += (m->dump_avail[i + 1] + PAGE_SIZE - 1) / PAGE_SIZE - m->dump_avail[i] / PAGE_SIZE;
	return bits;
}

void write_minidump(struct machine *m, const struct scenario *s, const char *path)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		die("cannot create %s", path);

	const uint64_t bits = bitmap_bits(m);
	const uint64_t words = (bits + 63) / 64;
	uint64_t *bitmap = calloc(words, 8);
	for (uint64_t b = 0; b < bits; b++) {
		uint64_t pa;
		if (bit_to_pa(m, b, &pa) && page_in_minidump(m, pa))
			bitmap[b / 64] |= 1ull << (b % 64);
	}
	const uint64_t pmap_pages = (MINIDUMP_KVA_END - VM_MIN_KERNEL_ADDRESS) / NBPDP;

	struct minidumphdr h;
	memset(&h, 0, sizeof(h));
	strcpy(h.magic, MINIDUMP_MAGIC);
	h.version = MINIDUMP_VERSION;
	h.msgbufsize = s->msgbuf_size;
	h.bitmapsize = (uint32_t)round_page(words * 8);
	h.pmapsize = (uint32_t)(pmap_pages * PAGE_SIZE);
	h.kernbase = VM_MIN_KERNEL_ADDRESS;
	h.dmapbase = DMAP_MIN_ADDRESS;
	h.dmapend = DMAP_MAX_ADDRESS;
	h.dumpavailsize = PAGE_SIZE;
	put(f, &h, sizeof(h), path);
	pad(f, PAGE_SIZE - sizeof(h), path);

	put(f, pa_ptr(m, s->msgbuf_pa, s->msgbuf_size), s->msgbuf_size, path);
	pad(f, round_page(s->msgbuf_size) - s->msgbuf_size, path);

	put(f, m->dump_avail, sizeof(m->dump_avail), path);
	pad(f, PAGE_SIZE - sizeof(m->dump_avail), path);

	put(f, bitmap, words * 8, path);
	pad(f, h.bitmapsize - words * 8, path);

	uint64_t pd[512];
	for (uint64_t va = VM_MIN_KERNEL_ADDRESS; va < MINIDUMP_KVA_END; va += NBPDP) {
		minidump_pd_page(m, va, pd);
		put(f, pd, sizeof(pd), path);
	}

	uint64_t pages = 0;
	for (uint64_t b = 0; b < bits; b++) {
		uint64_t pa;
		if (!(bitmap[b / 64] & (1ull << (b % 64))) || !bit_to_pa(m, b, &pa))
			continue;
		put(f, pa_ptr(m, pa, PAGE_SIZE), PAGE_SIZE, path);
		pages++;
	}
	if (fclose(f) != 0)
		die("cannot write %s", path);
	free(bitmap);
	printf("%s: minidump version %d, %llu pages\n", path, MINIDUMP_VERSION, (unsigned long long)pages);
}

void write_elf_dump(struct machine *m, const char *path)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		die("cannot create %s", path);

	unsigned n = 0;
	while (m->dump_avail[2 * n + 1] != 0)
		n++;
	Elf64_Ehdr eh;
	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_ident[EI_OSABI] = ELFOSABI_STANDALONE;
	eh.e_type = ET_CORE;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = (Elf64_Half)n;
	eh.e_shentsize = sizeof(Elf64_Shdr);
	put(f, &eh, sizeof(eh), path);

	const uint64_t hdrsz = sizeof(eh) + n * sizeof(Elf64_Phdr);
	uint64_t off = round_page(hdrsz);
	for (unsigned i = 0; i < n; i++) {
		Elf64_Phdr ph;
		memset(&ph, 0, sizeof(ph));
		ph.p_type = PT_LOAD;
		ph.p_flags = PF_R;
		ph.p_offset = off;
		ph.p_vaddr = ph.p_paddr = m->dump_avail[2 * i];
		ph.p_filesz = ph.p_memsz = m->dump_avail[2 * i + 1] - m->dump_avail[2 * i];
		ph.p_align = PAGE_SIZE;
		put(f, &ph, sizeof(ph), path);
		off += ph.p_filesz;
	}
	pad(f, round_page(hdrsz) - hdrsz, path);
	for (unsigned i = 0; i < n; i++) {
		uint64_t a = m->dump_avail[2 * i], b = m->dump_avail[2 * i + 1];
		put(f, pa_ptr(m, a, b - a), b - a, path);
	}
	if (fclose(f) != 0)
		die("cannot write %s", path);
	printf("%s: ELF dump, %u segments\n", path, n);
}
