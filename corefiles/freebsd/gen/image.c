#include "image.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../fbsd_types.h"

const struct symbol *sym_find(const struct symtab *t, const char *name)
{
	for (unsigned i = 0; i < t->count; i++)
		if (strcmp(t->syms[i].name, name) == 0)
			return &t->syms[i];
	return NULL;
}

uint64_t sym_addr(const struct symtab *t, const char *name)
{
	const struct symbol *s = sym_find(t, name);

	if (s == NULL)
		die("no symbol %s", name);
	return s->value;
}

static void sym_add(struct symtab *t, const char *name, uint64_t value, uint64_t size)
{
	t->syms = realloc(t->syms, (t->count + 1) * sizeof(t->syms[0]));
	if (t->syms == NULL)
		die("out of memory");
	t->syms[t->count].name = strdup(name);
	t->syms[t->count].value = value;
	t->syms[t->count].size = size;
	t->count++;
}

static Elf *open_elf(const char *path, int *fd)
{
	if (elf_version(EV_CURRENT) == EV_NONE)
		die("libelf: %s", elf_errmsg(-1));
	*fd = open(path, O_RDONLY);
	if (*fd < 0)
		die("cannot open %s", path);
	Elf *e = elf_begin(*fd, ELF_C_READ, NULL);
	if (e == NULL || elf_kind(e) != ELF_K_ELF)
		die("%s: not ELF", path);
	return e;
}

static Elf_Scn *find_symtab(Elf *e, GElf_Shdr *sh)
{
	for (Elf_Scn *s = elf_nextscn(e, NULL); s != NULL; s = elf_nextscn(e, s))
		if (gelf_getshdr(s, sh) && sh->sh_type == SHT_SYMTAB)
			return s;
	die("no symbol table");
}

void load_kernel(struct machine *m, const char *path, struct kernel_image *k)
{
	int fd;
	Elf *e = open_elf(path, &fd);
	size_t n;
	GElf_Shdr sh;

	memset(k, 0, sizeof(*k));
	k->start = ~0ull;
	if (elf_getphdrnum(e, &n) != 0)
		die("%s: no program headers", path);
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;
		if (gelf_getphdr(e, (int)i, &ph) == NULL || ph.p_type != PT_LOAD)
			continue;
		uint64_t pa = ph.p_vaddr - KERNBASE;
		uint8_t *dst = pa_ptr(m, pa, ph.p_memsz);
		if (pread(fd, dst, ph.p_filesz, (off_t)ph.p_offset) != (ssize_t)ph.p_filesz)
			die("%s: cannot read a segment", path);
		if (ph.p_vaddr < k->start)
			k->start = ph.p_vaddr;
		if (ph.p_vaddr + ph.p_memsz > k->end)
			k->end = ph.p_vaddr + ph.p_memsz;
	}

	Elf_Scn *s = find_symtab(e, &sh);
	Elf_Data *d = elf_getdata(s, NULL);
	for (size_t i = 1; i < sh.sh_size / sh.sh_entsize; i++) {
		GElf_Sym sym;
		gelf_getsym(d, (int)i, &sym);
		const char *name = elf_strptr(e, sh.sh_link, sym.st_name);
		if (name && *name && sym.st_shndx != SHN_UNDEF)
			sym_add(&k->symbols, name, sym.st_value, sym.st_size);
	}
	elf_end(e);
	close(fd);
}

static int loaded_section(const GElf_Shdr *sh)
{
	return (sh->sh_flags & SHF_ALLOC) && sh->sh_size > 0 &&
	    (sh->sh_type == SHT_PROGBITS || sh->sh_type == SHT_NOBITS ||
	     sh->sh_type == SHT_X86_64_UNWIND || sh->sh_type == SHT_INIT_ARRAY ||
	     sh->sh_type == SHT_FINI_ARRAY);
}

/* Section offsets from the load base, in file order as link_elf_obj places them. */
static uint64_t layout(Elf *e, uint64_t *offsets, size_t nsec)
{
	uint64_t at = 0;
	size_t i = 0;

	for (Elf_Scn *s = elf_nextscn(e, NULL); s != NULL; s = elf_nextscn(e, s)) {
		GElf_Shdr sh;
		i = elf_ndxscn(s);
		if (i >= nsec || !gelf_getshdr(s, &sh))
			continue;
		offsets[i] = ~0ull;
		if (!loaded_section(&sh))
			continue;
		uint64_t align = sh.sh_addralign ? sh.sh_addralign : 1;
		at = (at + align - 1) & ~(align - 1);
		offsets[i] = at;
		at += sh.sh_size;
	}
	return at;
}

uint64_t module_size(const char *path)
{
	int fd;
	Elf *e = open_elf(path, &fd);
	size_t nsec;

	elf_getshdrnum(e, &nsec);
	uint64_t *off = calloc(nsec, sizeof(*off));
	uint64_t size = layout(e, off, nsec);
	free(off);
	elf_end(e);
	close(fd);
	return size;
}

void load_module(struct machine *m, const char *path, uint64_t base, const struct kernel_image *k,
    struct module_image *mod)
{
	int fd;
	Elf *e = open_elf(path, &fd);
	size_t nsec;
	GElf_Shdr sh, symsh;

	memset(mod, 0, sizeof(*mod));
	elf_getshdrnum(e, &nsec);
	uint64_t *off = calloc(nsec, sizeof(*off));
	mod->base = base;
	mod->size = layout(e, off, nsec);

	size_t shstrndx;
	elf_getshdrstrndx(e, &shstrndx);
	for (Elf_Scn *s = elf_nextscn(e, NULL); s != NULL; s = elf_nextscn(e, s)) {
		size_t i = elf_ndxscn(s);
		gelf_getshdr(s, &sh);
		if (off[i] == ~0ull)
			continue;
		const char *name = elf_strptr(e, shstrndx, sh.sh_name);
		mod->sections = realloc(mod->sections, (mod->nsections + 1) * sizeof(mod->sections[0]));
		struct module_section *ms = &mod->sections[mod->nsections++];
		ms->name = strdup(name);
		ms->index = (unsigned)i;
		ms->addr = base + off[i];
		ms->size = sh.sh_size;
		ms->flags = sh.sh_flags;
		if (strcmp(name, ".text") == 0) {
			mod->text = ms->addr;
			mod->text_size = sh.sh_size;
		}
		if (sh.sh_type == SHT_PROGBITS || sh.sh_type == SHT_X86_64_UNWIND) {
			Elf_Data *d = elf_getdata(s, NULL);
			kwrite(m, ms->addr, d->d_buf, d->d_size);
		}
	}

	/* Symbol values: loaded addresses (sections) or the kernel's (undefined). */
	Elf_Scn *symscn = find_symtab(e, &symsh);
	Elf_Data *symdata = elf_getdata(symscn, NULL);
	size_t nsyms = symsh.sh_size / symsh.sh_entsize;
	uint64_t *value = calloc(nsyms, sizeof(*value));
	for (size_t i = 1; i < nsyms; i++) {
		GElf_Sym sym;
		gelf_getsym(symdata, (int)i, &sym);
		const char *name = elf_strptr(e, symsh.sh_link, sym.st_name);
		if (sym.st_shndx == SHN_UNDEF) {
			value[i] = sym_addr(&k->symbols, name);
		} else if (sym.st_shndx == SHN_ABS) {
			value[i] = sym.st_value;
		} else if (sym.st_shndx < nsec && off[sym.st_shndx] != ~0ull) {
			value[i] = base + off[sym.st_shndx] + sym.st_value;
			if (name && *name && GELF_ST_TYPE(sym.st_info) != STT_SECTION)
				sym_add(&mod->symbols, name, value[i], sym.st_size);
		}
	}

	/* Relocations of loaded sections. */
	for (Elf_Scn *s = elf_nextscn(e, NULL); s != NULL; s = elf_nextscn(e, s)) {
		gelf_getshdr(s, &sh);
		if (sh.sh_type != SHT_RELA || sh.sh_info >= nsec || off[sh.sh_info] == ~0ull)
			continue;
		Elf_Data *d = elf_getdata(s, NULL);
		for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Rela r;
			gelf_getrela(d, (int)i, &r);
			uint64_t where = base + off[sh.sh_info] + r.r_offset;
			uint64_t S = value[GELF_R_SYM(r.r_info)];
			int64_t A = r.r_addend;
			uint64_t v64;
			uint32_t v32;
			switch (GELF_R_TYPE(r.r_info)) {
			case R_X86_64_64:
				v64 = S + (uint64_t)A;
				kwrite(m, where, &v64, 8);
				break;
			case R_X86_64_PC32:
			case R_X86_64_PLT32:
				v32 = (uint32_t)(S + (uint64_t)A - where);
				kwrite(m, where, &v32, 4);
				break;
			case R_X86_64_32S:
			case R_X86_64_32:
				v32 = (uint32_t)(S + (uint64_t)A);
				kwrite(m, where, &v32, 4);
				break;
			default:
				die("%s: relocation type %u not handled", path, (unsigned)GELF_R_TYPE(r.r_info));
			}
		}
	}
	free(value);
	free(off);
	elf_end(e);
	close(fd);
}
