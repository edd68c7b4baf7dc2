/*
 * The fixture's ELF inputs, read with libelf: the kernel image (symbols,
 * loadable contents) and the module, linked the way FreeBSD's object linker
 * (link_elf_obj) loads an amd64 .ko: its allocated sections one after the
 * other from the load address, relocated against itself and the kernel.
 */
#ifndef KQ_FBSD_GEN_IMAGE_H
#define KQ_FBSD_GEN_IMAGE_H

#include <stdint.h>

#include "machine.h"

struct symbol {
	char *name;
	uint64_t value;
	uint64_t size;
};

struct symtab {
	struct symbol *syms;
	unsigned count;
};

/* A symbol's address; dies if absent. */
uint64_t sym_addr(const struct symtab *t, const char *name);
const struct symbol *sym_find(const struct symtab *t, const char *name);

struct kernel_image {
	struct symtab symbols;
	uint64_t start, end;		/* loaded [start, end) */
};

/* Copies the kernel's loadable segments to their physical addresses. */
void load_kernel(struct machine *m, const char *path, struct kernel_image *k);

struct module_section {
	char *name;
	unsigned index;			/* in the .ko */
	uint64_t addr, size;
	uint64_t flags;			/* sh_flags */
};

struct module_image {
	struct symtab symbols;		/* defined symbols at their loaded addresses */
	struct module_section *sections;
	unsigned nsections;
	uint64_t base, size;		/* the load: page aligned base, size in bytes */
	uint64_t text, text_size;
};

/* Links the module at base (mapped already for size_needed bytes, see
 * module_size()) and copies it there. */
uint64_t module_size(const char *path);
void load_module(struct machine *m, const char *path, uint64_t base, const struct kernel_image *k,
    struct module_image *mod);

#endif
