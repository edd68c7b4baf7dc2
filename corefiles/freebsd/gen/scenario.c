#include "scenario.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../kq_fbsd.h"
#include "stack.h"

/* Where things live in kernel virtual memory. */
#define MODULE_BASE 0xffffffff82a3c000ull	/* kldload puts .ko files above the kernel */
#define KSTACK_BASE 0xfffffe0010000000ull	/* kernel stacks: a guard page, then KSTACK_PAGES */
#define NODUMP_VA 0xfffffe0020000000ull		/* a PG_NODUMP page (minidumps leave it out) */
#define KMEM_BASE 0xfffffe0030000000ull		/* kmem_malloc() */
#define LARGEMAP_VA 0xfffffe0040000000ull	/* a 1 GiB page over device memory */
#define LARGEMAP_PA 0x40000000ull
#define DMAP_SIZE (4ull << 30)			/* FreeBSD maps at least 4 GiB in the direct map */
#define UMA_FIRST_PAGE 0x9000ull		/* the first UMA page lies below 640 KiB */
#define MSGBUF_PAGES 4

#define XSAVE_AREA 576				/* FPU state above the pcb */
#define HZ 1000
#define SBT_1S (1ll << 32)
#define NOW (1000 * SBT_1S)
#define CALLWHEELSIZE 256
#define SYS_wait4 7
#define SYS_reboot 55
#define PTE_KERN (PG_RW | PG_M | PG_G)

struct ctx {
	struct machine *m;
	struct scenario *s;
	struct code code;
	uint64_t kstack_next, kmem_next;
	uint64_t uma_page, uma_used;
	lwpid_t next_tid;
};

#define SET(va, type, member, value) \
	set_field(c->m, (va) + offsetof(type, member), sizeof(((type *)0)->member), (uint64_t)(value))
#define AT(va, type, member) ((va) + offsetof(type, member))

static void set_field(struct machine *m, uint64_t at, size_t size, uint64_t v)
{
	if (size > sizeof(v))
		die("field of %zu bytes", size);
	kwrite(m, at, &v, size);
}

static void set_str(struct machine *m, uint64_t at, const char *str, size_t size)
{
	char buf[64] = { 0 };

	if (size > sizeof(buf) || strlen(str) >= size)
		die("string %s too long", str);
	strcpy(buf, str);
	kwrite(m, at, buf, size);
}

static uint64_t ksym(struct ctx *c, const char *name)
{
	return sym_addr(&c->s->kernel.symbols, name);
}

static uint64_t msym(struct ctx *c, const char *name)
{
	return sym_addr(&c->s->module.symbols, name);
}

static uint64_t dmap(uint64_t pa)
{
	return DMAP_MIN_ADDRESS + pa;
}

/* A C string inside [lo, hi) of kernel memory (string literals of an image). */
static uint64_t find_cstring(struct ctx *c, uint64_t lo, uint64_t hi, const char *str)
{
	size_t n = strlen(str) + 1;
	char *buf = malloc(hi - lo);

	kread(c->m, lo, buf, hi - lo);
	for (uint64_t i = 0; i + n <= hi - lo; i++) {
		/* Not the tail of a longer string. */
		if (memcmp(buf + i, str, n) == 0 && (i == 0 || buf[i - 1] < 0x20 || buf[i - 1] > 0x7e)) {
			free(buf);
			return lo + i;
		}
	}
	die("string \"%s\" not found", str);
}

/* malloc(9)/UMA: small items in direct-map pages, which are dumped. */
static uint64_t uma_alloc(struct ctx *c, size_t size)
{
	size = (size + 63) & ~(size_t)63;
	if (size > PAGE_SIZE)
		die("UMA item of %zu bytes", size);
	if (c->uma_page == 0 || c->uma_used + size > PAGE_SIZE) {
		c->uma_page = c->uma_page == 0 ? UMA_FIRST_PAGE : alloc_page(c->m);
		c->uma_used = 0;
		dump_add_page(c->m, c->uma_page);
	}
	uint64_t va = dmap(c->uma_page + c->uma_used);
	c->uma_used += size;
	return va;
}

static uint64_t uma_strdup(struct ctx *c, const char *str)
{
	uint64_t va = uma_alloc(c, strlen(str) + 1);

	kwrite(c->m, va, str, strlen(str) + 1);
	return va;
}

/* kmem_malloc(): pages mapped with 4 KiB entries in the kernel map. */
static uint64_t kmem_alloc(struct ctx *c, unsigned pages)
{
	uint64_t va = c->kmem_next;

	for (unsigned i = 0; i < pages; i++)
		map_4k(c->m, va + i * PAGE_SIZE, alloc_page(c->m), PTE_KERN | PG_NX);
	c->kmem_next += pages * PAGE_SIZE;
	return va;
}

/* A kernel stack: a guard page left unmapped, then KSTACK_PAGES whose
 * physical pages are not contiguous (allocated in reverse). */
static uint64_t kstack_alloc(struct ctx *c)
{
	uint64_t base = c->kstack_next + PAGE_SIZE;
	uint64_t pa[KSTACK_PAGES];

	for (int i = 0; i < KSTACK_PAGES; i++)
		pa[i] = alloc_page(c->m);
	for (int i = 0; i < KSTACK_PAGES; i++)
		map_4k(c->m, base + i * PAGE_SIZE, pa[KSTACK_PAGES - 1 - i], PTE_KERN | PG_NX);
	c->kstack_next += (KSTACK_PAGES + 1) * PAGE_SIZE;
	return base;
}

/* sys/queue.h operations on kernel memory. */
static void tailq_init(struct ctx *c, uint64_t head)
{
	kwrite_u64(c->m, head, 0);
	kwrite_u64(c->m, head + 8, head);
}

static void tailq_insert_tail(struct ctx *c, uint64_t head, uint64_t elm, size_t entry)
{
	uint64_t last = kread_u64(c->m, head + 8);

	kwrite_u64(c->m, elm + entry, 0);
	kwrite_u64(c->m, elm + entry + 8, last);
	kwrite_u64(c->m, last, elm);
	kwrite_u64(c->m, head + 8, elm + entry);
}

static void list_insert_head(struct ctx *c, uint64_t head, uint64_t elm, size_t entry)
{
	uint64_t first = kread_u64(c->m, head);

	kwrite_u64(c->m, elm + entry, first);
	if (first != 0)
		kwrite_u64(c->m, first + entry + 8, elm + entry);
	kwrite_u64(c->m, head, elm);
	kwrite_u64(c->m, elm + entry + 8, head);
}

static void note(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(c->s->manifest, fmt, ap);
	fputc('\n', c->s->manifest);
	va_end(ap);
}

static uint64_t new_proc(struct ctx *c, uint64_t va, const char *comm, pid_t pid, uint64_t parent, int flags)
{
	if (va == 0)
		va = uma_alloc(c, sizeof(struct proc));
	SET(va, struct proc, p_pid, pid);
	SET(va, struct proc, p_state, PRS_NORMAL);
	SET(va, struct proc, p_flag, flags | P_INMEM);
	SET(va, struct proc, p_pptr, parent ? parent : va);
	set_str(c->m, AT(va, struct proc, p_comm), comm, MAXCOMLEN + 1);
	tailq_init(c, AT(va, struct proc, p_threads));
	SET(va, struct proc, p_mtx.lock_object.lo_name, uma_strdup(c, "process lock"));
	SET(va, struct proc, p_mtx.mtx_lock, MTX_UNOWNED);
	list_insert_head(c, ksym(c, "allproc"), va, offsetof(struct proc, p_list));
	set_field(c->m, ksym(c, "nprocs"), 4, (uint64_t)(kread_u64(c->m, ksym(c, "nprocs")) & 0xffffffff) + 1);
	note(c, "proc 0x%llx %d %s", (unsigned long long)va, pid, comm);
	return va;
}

/* The stack pointer a new thread's first function runs with: below the
 * pcb and trap frame at the top of its kernel stack. */
static uint64_t thread_frame(uint64_t kstack)
{
	uint64_t pcb = ((kstack + KSTACK_PAGES * PAGE_SIZE - XSAVE_AREA) & ~63ull) - sizeof(struct pcb);

	pcb &= ~15ull;
	return pcb - sizeof(struct trapframe);
}

static uint64_t new_thread(struct ctx *c, uint64_t proc, uint64_t va, uint64_t kstack, const char *name, int kthread)
{
	const lwpid_t tid = c->next_tid++;

	if (va == 0)
		va = uma_alloc(c, sizeof(struct thread));
	if (kstack == 0)
		kstack = kstack_alloc(c);
	const uint64_t frame = thread_frame(kstack);
	const uint64_t pcb = frame + sizeof(struct trapframe);

	SET(va, struct thread, td_lock, ksym(c, "blocked_lock"));
	SET(va, struct thread, td_proc, proc);
	SET(va, struct thread, td_tid, tid);
	SET(va, struct thread, td_flags, TDF_INMEM);
	SET(va, struct thread, td_pflags, kthread ? TDP_KTHREAD : 0);
	SET(va, struct thread, td_priority, kthread ? 84 : 120);
	SET(va, struct thread, td_base_pri, kthread ? 84 : 120);
	set_str(c->m, AT(va, struct thread, td_name), name, MAXCOMLEN + 1);
	SET(va, struct thread, td_pcb, pcb);
	SET(va, struct thread, td_state, TDS_INHIBITED);
	SET(va, struct thread, td_frame, frame);
	SET(va, struct thread, td_kstack, kstack);
	SET(va, struct thread, td_kstack_pages, KSTACK_PAGES);
	SET(va, struct thread, td_md.md_stack_base, pcb);
	SET(va, struct thread, td_oncpu, NOCPU);
	SET(va, struct thread, td_lastcpu, 0);
	SET(va, struct thread, td_slpcallout.c_cpu, 0);
	tailq_insert_tail(c, AT(proc, struct proc, p_threads), va, offsetof(struct thread, td_plist));
	uint32_t n;
	kread(c->m, AT(proc, struct proc, p_numthreads), &n, 4);
	SET(proc, struct proc, p_numthreads, n + 1);
	return va;
}

static lwpid_t tid_of(struct ctx *c, uint64_t td)
{
	uint32_t tid;

	kread(c->m, AT(td, struct thread, td_tid), &tid, 4);
	return (lwpid_t)tid;
}

/* Plants the chain on the thread's stack; its saved context goes to its
 * pcb, or to `pcb` when given (dumppcb, stoppcbs[n]). */
static void plant(struct ctx *c, uint64_t td, uint64_t pcb, const char *const *chain)
{
	const uint64_t kstack = kread_u64(c->m, AT(td, struct thread, td_kstack));
	const uint64_t frame = kread_u64(c->m, AT(td, struct thread, td_frame));
	struct saved_context ctx = plant_chain(&c->code, frame, kstack, chain);

	if (pcb == 0)
		pcb = kread_u64(c->m, AT(td, struct thread, td_pcb));
	SET(pcb, struct pcb, pcb_rip, ctx.rip);
	SET(pcb, struct pcb, pcb_rsp, ctx.rsp);
	SET(pcb, struct pcb, pcb_rbp, ctx.rbp);
	SET(pcb, struct pcb, pcb_rbx, 0);
	SET(pcb, struct pcb, pcb_r12, td);
	SET(pcb, struct pcb, pcb_r13, 0);
	SET(pcb, struct pcb, pcb_r14, 0);
	SET(pcb, struct pcb, pcb_r15, 0);
	SET(pcb, struct pcb, pcb_cr3, c->m->pml4);

	char line[512];
	size_t at = (size_t)snprintf(line, sizeof(line), "stack %d 0x%llx 0x%llx", tid_of(c, td),
	    (unsigned long long)ctx.rip, (unsigned long long)ctx.rsp);
	for (size_t i = 0; chain[i] != NULL && at < sizeof(line); i++) {
		char name[64];
		at += (size_t)snprintf(line + at, sizeof(line) - at, " %s", chain_name(chain[i], name, sizeof(name)));
	}
	note(c, "%s", line);
}

/* The trap frame a system call from user mode left at the top of the
 * thread's stack (amd64 user segment selectors, ring 3). */
static void syscall_frame(struct ctx *c, uint64_t td, int sysno)
{
	const uint64_t tf = kread_u64(c->m, AT(td, struct thread, td_frame));

	SET(tf, struct trapframe, tf_rax, sysno);
	SET(tf, struct trapframe, tf_rip, 0x1021a4aull);
	SET(tf, struct trapframe, tf_cs, 0x43);		/* GUCODE_SEL, SEL_UPL */
	SET(tf, struct trapframe, tf_rflags, 0x202);
	SET(tf, struct trapframe, tf_rsp, 0x7fffffffe8c8ull);
	SET(tf, struct trapframe, tf_ss, 0x3b);		/* GUDATA_SEL, SEL_UPL */
}

static void sleep_on(struct ctx *c, uint64_t td, uint64_t wchan, uint64_t wmesg)
{
	SET(td, struct thread, td_wchan, wchan);
	SET(td, struct thread, td_wmesg, wmesg);
	SET(td, struct thread, td_inhibitors, TDI_SLEEPING);
	SET(td, struct thread, td_state, TDS_INHIBITED);
}

static void on_cpu(struct ctx *c, uint64_t td, int cpu)
{
	SET(td, struct thread, td_state, TDS_RUNNING);
	SET(td, struct thread, td_oncpu, cpu);
	SET(td, struct thread, td_lastcpu, cpu);
}

static void thread_note(struct ctx *c, uint64_t td, const char *name, const char *state, int in_module)
{
	note(c, "thread %d 0x%llx %s %s %s 0x%llx", tid_of(c, td), (unsigned long long)td, name, state,
	    in_module ? "module" : "kernel", (unsigned long long)kread_u64(c->m, AT(td, struct thread, td_kstack)));
}

/* Kernel memory with 2 MiB, 1 GiB and 4 KiB pages and the direct map. */
static void map_kernel(struct ctx *c)
{
	struct machine *m = c->m;

	for (uint64_t pa = 0; pa < 0x600000; pa += NBPDR)
		map_2m(m, KERNBASE + pa, pa, PTE_KERN);
	for (uint64_t pa = 0; pa < DMAP_SIZE; pa += NBPDP)
		map_1g(m, DMAP_MIN_ADDRESS + pa, pa, PG_RW | PG_M | PG_G | PG_NX);
	map_1g(m, LARGEMAP_VA, LARGEMAP_PA, PG_RW | PG_M | PG_G | PG_NX);

	uint64_t nodump = alloc_page(m);
	map_4k(m, NODUMP_VA, nodump, PTE_KERN | PG_NX);
	mark_nodump(m, nodump);
	memset(pa_ptr(m, nodump, PAGE_SIZE), 0x5a, PAGE_SIZE);
	memcpy(pa_ptr(m, nodump, 16), "kq_fbsd nodump", 15);

	note(c, "map kernel 0x%llx 0x%llx 2m", (unsigned long long)KERNBASE, 0ull);
	note(c, "map largemap 0x%llx 0x%llx 1g", (unsigned long long)LARGEMAP_VA, (unsigned long long)LARGEMAP_PA);
	note(c, "map nodump 0x%llx 0x%llx 4k", (unsigned long long)NODUMP_VA, (unsigned long long)nodump);
	note(c, "pml4 0x%llx", (unsigned long long)m->pml4);
}

static void load_images(struct ctx *c, const char *kernel, const char *ko)
{
	struct scenario *s = c->s;

	load_kernel(c->m, kernel, &s->kernel);
	if (s->kernel.start != KERNBASE + 0x200000 || s->kernel.end - KERNBASE > c->m->boot_next)
		die("%s is not linked where the fixture expects it", kernel);

	const uint64_t size = module_size(ko);
	const unsigned pages = (unsigned)((size + PAGE_SIZE - 1) / PAGE_SIZE);
	for (unsigned i = 0; i < pages; i++) {
		/* Text and data alike in 4 KiB pages, physically apart. */
		uint64_t pa = alloc_page(c->m);
		alloc_page(c->m);
		map_4k(c->m, MODULE_BASE + i * PAGE_SIZE, pa, PTE_KERN);
	}
	load_module(c->m, ko, MODULE_BASE, &s->kernel, &s->module);
	c->code.m = c->m;
	c->code.tabs[0] = &s->kernel.symbols;
	c->code.tabs[1] = &s->module.symbols;
	note(c, "map module 0x%llx 0x%llx 4k", (unsigned long long)MODULE_BASE,
	    (unsigned long long)kva_to_pa(c->m, MODULE_BASE));
	note(c, "module kq_fbsd.ko 0x%llx 0x%llx", (unsigned long long)MODULE_BASE, (unsigned long long)size);
}

/* Linker files (kernel, kq_fbsd.ko) and their modules. */
static void link_files(struct ctx *c)
{
	struct scenario *s = c->s;
	const uint64_t files = ksym(c, "linker_files");
	const uint64_t modules = ksym(c, "modules");

	tailq_init(c, files);
	tailq_init(c, modules);

	uint64_t klf = uma_alloc(c, sizeof(struct linker_file));
	SET(klf, struct linker_file, refs, 2);
	SET(klf, struct linker_file, flags, LINKER_FILE_LINKED);
	SET(klf, struct linker_file, filename, uma_strdup(c, "kernel"));
	SET(klf, struct linker_file, pathname, uma_strdup(c, "/boot/kernel/kernel"));
	SET(klf, struct linker_file, id, 1);
	SET(klf, struct linker_file, address, s->kernel.start);
	SET(klf, struct linker_file, size, s->kernel.end - s->kernel.start);
	tailq_init(c, AT(klf, struct linker_file, modules));
	tailq_insert_tail(c, files, klf, offsetof(struct linker_file, link));
	kwrite_u64(c->m, ksym(c, "linker_kernel_file"), klf);

	/* link_elf_obj's elf_file: the linker_file, then where each section went. */
	uint64_t ef = uma_alloc(c, sizeof(struct elf_file));
	uint64_t deps = uma_alloc(c, sizeof(uint64_t));
	kwrite_u64(c->m, deps, klf);
	SET(ef, struct linker_file, refs, 1);
	SET(ef, struct linker_file, userrefs, 1);
	SET(ef, struct linker_file, flags, LINKER_FILE_LINKED);
	SET(ef, struct linker_file, filename, uma_strdup(c, "kq_fbsd.ko"));
	SET(ef, struct linker_file, pathname, uma_strdup(c, "/boot/modules/kq_fbsd.ko"));
	SET(ef, struct linker_file, id, 2);
	SET(ef, struct linker_file, address, s->module.base);
	SET(ef, struct linker_file, size, s->module.size);
	SET(ef, struct linker_file, ndeps, 1);
	SET(ef, struct linker_file, deps, deps);
	SET(ef, struct linker_file, loadcnt, 1);
	tailq_init(c, AT(ef, struct linker_file, modules));
	tailq_insert_tail(c, files, ef, offsetof(struct linker_file, link));

	uint64_t progtab = uma_alloc(c, s->module.nsections * sizeof(Elf_progent));
	for (unsigned i = 0; i < s->module.nsections; i++) {
		const struct module_section *ms = &s->module.sections[i];
		uint64_t pe = progtab + i * sizeof(Elf_progent);
		SET(pe, Elf_progent, addr, ms->addr);
		SET(pe, Elf_progent, size, ms->size);
		SET(pe, Elf_progent, flags, ms->flags);
		SET(pe, Elf_progent, sec, ms->index);
		SET(pe, Elf_progent, name, uma_strdup(c, ms->name));
		note(c, "section kq_fbsd.ko %s 0x%llx 0x%llx", ms->name, (unsigned long long)ms->addr,
		    (unsigned long long)ms->size);
	}
	SET(ef, struct elf_file, address, s->module.base);
	SET(ef, struct elf_file, progtab, progtab);
	SET(ef, struct elf_file, nprogtab, s->module.nsections);

	struct {
		const char *name;
		uint64_t file, handler;
	} mods[] = {
		{ "elink", klf, 0 },
		{ "kq_fbsd", ef, msym(c, "kq_fbsd_modevent") },
	};
	for (unsigned i = 0; i < 2; i++) {
		uint64_t mod = uma_alloc(c, sizeof(struct module));
		SET(mod, struct module, file, mods[i].file);
		SET(mod, struct module, refs, 1);
		SET(mod, struct module, id, i + 1);
		SET(mod, struct module, name, uma_strdup(c, mods[i].name));
		SET(mod, struct module, handler, mods[i].handler);
		tailq_insert_tail(c, modules, mod, offsetof(struct module, link));
		tailq_insert_tail(c, AT(mods[i].file, struct linker_file, modules), mod, offsetof(struct module, flink));
	}
	set_field(c->m, ksym(c, "nextid"), 4, 3);
}

/* Per-CPU data: struct pcpu, the dynamic per-CPU areas and their callout wheels. */
static void setup_cpus(struct ctx *c, uint64_t cc[2])
{
	const uint64_t start = ksym(c, "__start_set_pcpu");
	const uint64_t stop = ksym(c, "__stop_set_pcpu");
	uint8_t tmpl[PAGE_SIZE];

	if (stop - start > sizeof(tmpl))
		die("set_pcpu too large");
	kread(c->m, start, tmpl, stop - start);
	for (int cpu = 0; cpu < 2; cpu++) {
		/* The boot CPU's area comes from early memory, the others' from kmem. */
		uint64_t area = cpu == 0 ? KERNBASE + boot_page(c->m) : kmem_alloc(c, 1);
		kwrite(c->m, area, tmpl, stop - start);
		const uint64_t off = area - start;
		kwrite_u64(c->m, ksym(c, "dpcpu_off") + 8 * cpu, off);

		const uint64_t pc = ksym(c, "__pcpu") + cpu * sizeof(struct pcpu);
		kwrite_u64(c->m, ksym(c, "cpuid_to_pcpu") + 8 * cpu, pc);
		SET(pc, struct pcpu, pc_cpuid, cpu);
		SET(pc, struct pcpu, pc_dynamic, off);
		SET(pc, struct pcpu, pc_prvspace, pc);

		cc[cpu] = ksym(c, "pcpu_entry_cc_cpu") + off;
		uint64_t wheel = uma_alloc(c, CALLWHEELSIZE * sizeof(struct callout_list));
		SET(cc[cpu], struct callout_cpu, cc_lock.lock_object.lo_name, uma_strdup(c, "callout"));
		SET(cc[cpu], struct callout_cpu, cc_lock.mtx_lock, MTX_UNOWNED);
		SET(cc[cpu], struct callout_cpu, cc_callwheel, wheel);
		tailq_init(c, AT(cc[cpu], struct callout_cpu, cc_expireq));
		SET(cc[cpu], struct callout_cpu, cc_firstevent, INT64_MAX);
		SET(cc[cpu], struct callout_cpu, cc_lastscan, NOW);
		SET(cc[cpu], struct callout_cpu, cc_bucket, (NOW >> (32 - CC_HASH_SHIFT)) & (CALLWHEELSIZE - 1));
		note(c, "cc_cpu %d 0x%llx", cpu, (unsigned long long)cc[cpu]);
	}
	set_field(c->m, ksym(c, "mp_ncpus"), 4, 2);
	set_field(c->m, ksym(c, "mp_maxid"), 4, 1);
	set_field(c->m, ksym(c, "callwheelsize"), 4, CALLWHEELSIZE);
	set_field(c->m, ksym(c, "callwheelmask"), 4, CALLWHEELSIZE - 1);
}

/* callout_reset(): onto the wheel bucket of its time. */
static void callout_pend(struct ctx *c, uint64_t cc, uint64_t co, sbintime_t when, uint64_t func, uint64_t arg, int cpu)
{
	const unsigned bucket = (unsigned)((when >> (32 - CC_HASH_SHIFT)) & (CALLWHEELSIZE - 1));
	const uint64_t wheel = kread_u64(c->m, AT(cc, struct callout_cpu, cc_callwheel));

	SET(co, struct callout, c_time, when);
	SET(co, struct callout, c_precision, SBT_1S / 8);
	SET(co, struct callout, c_func, func);
	SET(co, struct callout, c_arg, arg);
	SET(co, struct callout, c_flags, CALLOUT_ACTIVE);
	SET(co, struct callout, c_iflags, CALLOUT_PENDING);
	SET(co, struct callout, c_cpu, cpu);
	list_insert_head(c, wheel + bucket * sizeof(struct callout_list), co, offsetof(struct callout, c_links.le));
	note(c, "callout %d 0x%llx func 0x%llx arg 0x%llx bucket %u", cpu, (unsigned long long)co,
	    (unsigned long long)func, (unsigned long long)arg, bucket);
}

/* taskqueue_create() and taskqueue_start_threads() of one thread, which
 * sleeps on the queue in taskqueue_thread_loop(); `var` points at it. */
static uint64_t new_taskqueue(struct ctx *c, uint64_t proc, uint64_t var, const char *name, const char *thread)
{
	const uint64_t tq = uma_alloc(c, sizeof(struct taskqueue));
	const uint64_t threads = uma_alloc(c, sizeof(uint64_t));

	SET(tq, struct taskqueue, tq_queue.stqh_first, 0);
	SET(tq, struct taskqueue, tq_queue.stqh_last, AT(tq, struct taskqueue, tq_queue.stqh_first));
	tailq_init(c, AT(tq, struct taskqueue, tq_active));
	SET(tq, struct taskqueue, tq_name, uma_strdup(c, name));
	SET(tq, struct taskqueue, tq_mutex.lock_object.lo_name, kread_u64(c->m, AT(tq, struct taskqueue, tq_name)));
	SET(tq, struct taskqueue, tq_mutex.lock_object.lo_flags, LO_INITIALIZED | (1u << LO_CLASSSHIFT));
	SET(tq, struct taskqueue, tq_mutex.mtx_lock, MTX_UNOWNED);
	SET(tq, struct taskqueue, tq_flags, 1);	/* TQ_FLAGS_ACTIVE */
	SET(tq, struct taskqueue, tq_threads, threads);
	SET(tq, struct taskqueue, tq_tcount, 1);
	kwrite_u64(c->m, var, tq);

	const uint64_t td = new_thread(c, proc, 0, 0, thread, 1);
	kwrite_u64(c->m, threads, td);
	sleep_on(c, td, tq, find_cstring(c, c->s->kernel.start, c->s->kernel.end, "-"));
	plant(c, td, 0, (const char *const[]){ "fork_trampoline", "fork_exit", "*taskqueue_thread_loop", "_sleep",
	    "sleepq_wait", "sleepq_switch", "mi_switch", "sched_switch", "cpu_switch", NULL });
	thread_note(c, td, thread, "sleeping", 0);
	note(c, "taskqueue 0x%llx %s %d", (unsigned long long)tq, name, tid_of(c, td));
	return tq;
}

/* taskqueue_enqueue() onto an empty queue. */
static void task_enqueue(struct ctx *c, uint64_t tq, uint64_t task)
{
	SET(task, struct task, ta_link.stqe_next, 0);
	SET(task, struct task, ta_pending, 1);
	SET(tq, struct taskqueue, tq_queue.stqh_first, task);
	SET(tq, struct taskqueue, tq_queue.stqh_last, AT(task, struct task, ta_link.stqe_next));
	note(c, "task 0x%llx func 0x%llx queue 0x%llx", (unsigned long long)task,
	    (unsigned long long)kread_u64(c->m, AT(task, struct task, ta_func)), (unsigned long long)tq);
}

/* eventhandler_find_or_create_list(): a named list on eventhandler_lists. */
static uint64_t eventhandler_list(struct ctx *c, const char *name)
{
	const uint64_t el = uma_alloc(c, sizeof(struct eventhandler_list));

	SET(el, struct eventhandler_list, el_name, uma_strdup(c, name));
	SET(el, struct eventhandler_list, el_lock.lock_object.lo_name, uma_strdup(c, "eventhandler list"));
	SET(el, struct eventhandler_list, el_lock.mtx_lock, MTX_UNOWNED);
	tailq_init(c, AT(el, struct eventhandler_list, el_entries));
	tailq_insert_tail(c, ksym(c, "eventhandler_lists"), el, offsetof(struct eventhandler_list, el_link));
	return el;
}

/* eventhandler_register(): an entry with its handler, in priority order
 * (the callers here register in order). */
static void eventhandler_add(struct ctx *c, uint64_t el, const char *name, uint64_t func, uint64_t arg, int pri)
{
	const uint64_t e = uma_alloc(c, sizeof(struct eventhandler_entry_generic));

	SET(e, struct eventhandler_entry_generic, ee.ee_priority, pri);
	SET(e, struct eventhandler_entry_generic, ee.ee_arg, arg);
	SET(e, struct eventhandler_entry_generic, func, func);
	tailq_insert_tail(c, AT(el, struct eventhandler_list, el_entries), e,
	    offsetof(struct eventhandler_entry_generic, ee.ee_link));
	note(c, "eventhandler %s 0x%llx func 0x%llx", name, (unsigned long long)e, (unsigned long long)func);
}

static void init_globals(struct ctx *c)
{
	struct machine *m = c->m;

	kwrite_u64(m, ksym(c, "KPML4phys"), m->pml4);
	kwrite_u64(m, ksym(c, "dmaplimit"), DMAP_SIZE);
	kwrite_u64(m, ksym(c, "kernphys"), 0x200000);
	for (int i = 0; m->dump_avail[i + 1] != 0; i++) {
		kwrite_u64(m, ksym(c, "dump_avail") + 8 * i, m->dump_avail[i]);
		kwrite_u64(m, ksym(c, "phys_avail") + 8 * i, m->dump_avail[i]);
	}
	kwrite_u64(m, ksym(c, "physmem"), RAM_SIZE / PAGE_SIZE);
	set_field(m, ksym(c, "ticks"), 4, 1000 * HZ);
	kwrite_u64(m, ksym(c, "panicstr"), uma_strdup(c, "kq_fbsd fixture"));
	SET(ksym(c, "Giant"), struct mtx, lock_object.lo_name, uma_strdup(c, "Giant"));
	SET(ksym(c, "Giant"), struct mtx, mtx_lock, MTX_UNOWNED);
	SET(ksym(c, "blocked_lock"), struct mtx, lock_object.lo_name, uma_strdup(c, "blocked lock"));
	SET(ksym(c, "blocked_lock"), struct mtx, mtx_lock, MTX_UNOWNED);
	tailq_init(c, ksym(c, "eventhandler_lists"));
}

/* The message buffer at the end of physical memory, its struct last. */
static void init_msgbuf(struct ctx *c)
{
	struct machine *m = c->m;
	const uint64_t pa = RAM_SIZE - MSGBUF_PAGES * PAGE_SIZE;
	const uint32_t size = MSGBUF_PAGES * PAGE_SIZE - sizeof(struct msgbuf);
	static const char text[] =
	    "---<<BOOT>>---\n"
	    "FreeBSD 14.1-RELEASE releng/14.1-n267679 GENERIC amd64\n"
	    "kq_fbsd: loaded\n"
	    "panic: kq_fbsd fixture\n"
	    "cpuid = 0\n"
	    "Dumping 16 MB\n";
	const uint64_t mb = dmap(pa + size);

	memcpy(pa_ptr(m, pa, sizeof(text)), text, sizeof(text) - 1);
	for (unsigned i = 0; i < MSGBUF_PAGES; i++)
		dump_add_page(m, pa + i * PAGE_SIZE);
	SET(mb, struct msgbuf, msg_ptr, dmap(pa));
	SET(mb, struct msgbuf, msg_magic, MSG_MAGIC);
	SET(mb, struct msgbuf, msg_size, size);
	SET(mb, struct msgbuf, msg_wseq, sizeof(text) - 1);
	SET(mb, struct msgbuf, msg_seqmod, size * 16);
	kwrite_u64(m, ksym(c, "msgbufp"), mb);
	c->s->msgbuf_pa = pa;
	c->s->msgbuf_size = size;
}

/* Pages nothing uses: present in a full dump only. */
static void fill_free_pages(struct ctx *c)
{
	for (uint64_t pa = RAM_SIZE - (1u << 20); pa < c->s->msgbuf_pa; pa += PAGE_SIZE) {
		char *p = (char *)pa_ptr(c->m, pa, PAGE_SIZE);
		snprintf(p, 64, "kq_fbsd free page 0x%llx", (unsigned long long)pa);
	}
	note(c, "free 0x%llx 0x%llx", (unsigned long long)dmap(RAM_SIZE - (1u << 20)),
	    (unsigned long long)(RAM_SIZE - (1u << 20)));
}

void build_scenario(struct machine *m, struct scenario *s, const char *kernel, const char *ko)
{
	struct ctx cx = { .m = m, .s = s, .kstack_next = KSTACK_BASE, .kmem_next = KMEM_BASE, .next_tid = 100000 };
	struct ctx *c = &cx;
	uint64_t cc[2];

	map_kernel(c);
	load_images(c, kernel, ko);
	note(c, "scenario %s", s->busy ? "busy" : "idle");
	init_globals(c);
	init_msgbuf(c);
	link_files(c);
	setup_cpus(c, cc);

	/* proc0 and thread0, whose stack comes from early boot memory. */
	const uint64_t proc0 = new_proc(c, ksym(c, "proc0"), "kernel", 0, 0, P_SYSTEM | P_KPROC);
	uint64_t kstack0 = KERNBASE + boot_page(c->m);
	for (int i = 1; i < KSTACK_PAGES; i++)
		boot_page(c->m);
	const uint64_t td0 = new_thread(c, proc0, ksym(c, "thread0_st"), kstack0, "swapper", 1);
	sleep_on(c, td0, proc0, find_cstring(c, s->kernel.start, s->kernel.end, "swapin"));
	plant(c, td0, 0, (const char *const[]){ "btext", "mi_startup", "swapper", "_sleep", "sleepq_wait",
	    "sleepq_switch", "mi_switch", "sched_switch", "cpu_switch", NULL });
	thread_note(c, td0, "swapper", "sleeping", 0);

	const uint64_t init = new_proc(c, 0, "init", 1, proc0, 0);
	const uint64_t clock = new_proc(c, 0, "clock", 2, proc0, P_SYSTEM | P_KPROC);
	const uint64_t idle = new_proc(c, 0, "idle", 11, proc0, P_SYSTEM | P_KPROC);
	const uint64_t sh = new_proc(c, 0, "sh", 42, init, 0);

	const uint64_t init_td = new_thread(c, init, 0, 0, "init", 0);
	sleep_on(c, init_td, init, find_cstring(c, s->kernel.start, s->kernel.end, "wait"));
	syscall_frame(c, init_td, SYS_wait4);
	plant(c, init_td, 0, (const char *const[]){ "fast_syscall_common", "amd64_syscall", "*sys_wait4",
	    "kern_wait6", "_sleep", "sleepq_wait", "sleepq_switch", "mi_switch", "sched_switch", "cpu_switch", NULL });
	thread_note(c, init_td, "init", "sleeping", 0);

	for (int cpu = 0; cpu < 2; cpu++) {
		char name[MAXCOMLEN + 1];
		snprintf(name, sizeof(name), "clock (%d)", cpu);
		uint64_t td = new_thread(c, clock, 0, 0, name, 1);
		SET(td, struct thread, td_inhibitors, TDI_IWAIT);
		SET(cc[cpu], struct callout_cpu, cc_thread, td);
		plant(c, td, 0, (const char *const[]){ "fork_trampoline", "fork_exit", "*softclock_thread",
		    "mi_switch", "sched_switch", "cpu_switch", NULL });
		thread_note(c, td, "clock", "iwait", 0);
	}

	uint64_t idle_td[2];
	for (int cpu = 0; cpu < 2; cpu++) {
		char name[MAXCOMLEN + 1];
		snprintf(name, sizeof(name), "idle: cpu%d", cpu);
		idle_td[cpu] = new_thread(c, idle, 0, 0, name, 1);
		SET(idle_td[cpu], struct thread, td_flags, TDF_INMEM | TDF_IDLETD);
		const uint64_t pc = ksym(c, "__pcpu") + cpu * sizeof(struct pcpu);
		SET(pc, struct pcpu, pc_idlethread, idle_td[cpu]);
	}
	/* CPU 0's idle thread is switched out; CPU 1's runs and was stopped. */
	SET(idle_td[0], struct thread, td_state, TDS_CAN_RUN);
	plant(c, idle_td[0], 0, (const char *const[]){ "fork_trampoline", "fork_exit", "*sched_idletd",
	    "mi_switch", "sched_switch", "cpu_switch", NULL });
	thread_note(c, idle_td[0], "idle", "runnable", 0);
	on_cpu(c, idle_td[1], 1);
	plant(c, idle_td[1], ksym(c, "stoppcbs") + sizeof(struct pcb), (const char *const[]){ "fork_trampoline",
	    "fork_exit", "*sched_idletd", "cpu_idle", "cpustop_handler", "savectx", NULL });
	thread_note(c, idle_td[1], "idle", "running", 0);
	SET(ksym(c, "__pcpu") + sizeof(struct pcpu), struct pcpu, pc_curthread, idle_td[1]);

	/* The thread that panicked and wrote the dump, on CPU 0. */
	const uint64_t sh_td = new_thread(c, sh, 0, 0, "sh", 0);
	on_cpu(c, sh_td, 0);
	syscall_frame(c, sh_td, SYS_reboot);
	plant(c, sh_td, ksym(c, "dumppcb"), (const char *const[]){ "fast_syscall_common", "amd64_syscall",
	    "*sys_reboot", "kern_reboot", "doadump", "savectx", NULL });
	set_field(m, ksym(c, "dumptid"), 4, (uint64_t)tid_of(c, sh_td));
	SET(ksym(c, "__pcpu"), struct pcpu, pc_curthread, sh_td);
	thread_note(c, sh_td, "sh", "running", 0);
	note(c, "dumptid %d", tid_of(c, sh_td));

	/* The system's thread taskqueue, and a kernel handler of an event. */
	const uint64_t tq = new_taskqueue(c, proc0, ksym(c, "taskqueue_thread"), "thread", "thread taskq");
	/* A driver's private taskqueue, which only its thread leads to, with a
	 * kernel task queued. */
	const uint64_t acpi_tq = new_taskqueue(c, proc0, uma_alloc(c, sizeof(uint64_t)), "acpi_task", "acpi_task_0");
	const uint64_t acpi_task = uma_alloc(c, sizeof(struct task));
	SET(acpi_task, struct task, ta_func, ksym(c, "taskqueue_task_nop_fn"));
	SET(acpi_task, struct task, ta_context, acpi_task);
	task_enqueue(c, acpi_tq, acpi_task);
	const uint64_t shutdown = eventhandler_list(c, "shutdown_pre_sync");
	eventhandler_add(c, shutdown, "shutdown_pre_sync", ksym(c, "poweroff_wait"), 0, 0);

	/* A kernel callout: thread0's sleep timeout, on CPU 1. */
	callout_pend(c, cc[1], AT(td0, struct thread, td_slpcallout), NOW + 30 * SBT_1S + SBT_1S / 2, ksym(c, "sleepq_timeout"), td0, 1);

	/* kq_fbsd.ko's state. */
	const uint64_t sc = msym(c, "kq_fbsd_sc");
	const uint64_t mtx = AT(sc, struct kq_fbsd_softc, sc_mtx);
	const uint64_t lock_name = find_cstring(c, s->module.base, s->module.base + s->module.size, "kq_fbsd_mtx");
	SET(mtx, struct mtx, lock_object.lo_name, lock_name);
	SET(mtx, struct mtx, lock_object.lo_flags, LO_INITIALIZED | (1u << LO_CLASSSHIFT));
	SET(mtx, struct mtx, mtx_lock, MTX_UNOWNED);
	set_str(m, AT(sc, struct kq_fbsd_softc, sc_name), "kq_fbsd0", sizeof(((struct kq_fbsd_softc *)0)->sc_name));
	const uint64_t co = AT(sc, struct kq_fbsd_softc, sc_callout);
	SET(co, struct callout, c_lock, mtx);
	SET(co, struct callout, c_func, msym(c, "kq_fbsd_tick"));
	SET(co, struct callout, c_arg, sc);
	const uint64_t sx = AT(sc, struct kq_fbsd_softc, sc_sx);
	SET(sx, struct sx, lock_object.lo_name, find_cstring(c, s->module.base, s->module.base + s->module.size, "kq_fbsd_sx"));
	SET(sx, struct sx, lock_object.lo_flags, LO_INITIALIZED | (2u << LO_CLASSSHIFT));
	SET(sx, struct sx, sx_lock, SX_LOCK_UNLOCKED);
	const uint64_t task = AT(sc, struct kq_fbsd_softc, sc_task);
	SET(task, struct task, ta_func, msym(c, "kq_fbsd_task"));
	SET(task, struct task, ta_context, sc);
	note(c, "mutex 0x%llx kq_fbsd_mtx", (unsigned long long)mtx);
	note(c, "sx 0x%llx kq_fbsd_sx", (unsigned long long)sx);
	note(c, "channel 0x%llx", (unsigned long long)msym(c, "kq_fbsd_chan"));

	if (s->busy) {
		const uint64_t threads = msym(c, "kq_fbsd_threads");

		/* Asleep on the module's channel. */
		const uint64_t sleeper = new_thread(c, proc0, 0, 0, "kq_fbsd_sleep", 1);
		sleep_on(c, sleeper, msym(c, "kq_fbsd_chan"),
		    find_cstring(c, s->module.base, s->module.base + s->module.size, "kqslp"));
		plant(c, sleeper, 0, (const char *const[]){ "fork_trampoline", "fork_exit", "*kq_fbsd_sleeper",
		    "_sleep", "sleepq_wait", "sleepq_switch", "mi_switch", "sched_switch", "cpu_switch", NULL });
		thread_note(c, sleeper, "kq_fbsd_sleep", "sleeping", 1);
		SET(sx, struct sx, sx_lock, sleeper);
		SET(sleeper, struct thread, td_locks, 1);
		note(c, "sx_owner 0x%llx %d", (unsigned long long)sx, tid_of(c, sleeper));

		/* Preempted inside the module by the clock interrupt, holding its mutex. */
		const uint64_t worker = new_thread(c, proc0, 0, 0, "kq_fbsd_work", 1);
		SET(worker, struct thread, td_state, TDS_RUNQ);
		SET(worker, struct thread, td_locks, 1);
		plant(c, worker, 0, (const char *const[]){ "fork_trampoline", "fork_exit", "*kq_fbsd_worker",
		    "!Xtimerint@critical_exit", "lapic_handle_timer", "critical_exit", "mi_switch", "sched_switch",
		    "cpu_switch", NULL });
		thread_note(c, worker, "kq_fbsd_work", "runq", 1);

		/* Blocked on the mutex, in a turnstile. */
		const uint64_t locker = new_thread(c, proc0, 0, 0, "kq_fbsd_lock", 1);
		const uint64_t ts = uma_alloc(c, sizeof(struct turnstile));
		SET(ts, struct turnstile, ts_lock.lock_object.lo_name, uma_strdup(c, "turnstile lock"));
		SET(ts, struct turnstile, ts_lock.mtx_lock, MTX_UNOWNED);
		tailq_init(c, AT(ts, struct turnstile, ts_blocked[0]));
		tailq_init(c, AT(ts, struct turnstile, ts_blocked[1]));
		tailq_init(c, AT(ts, struct turnstile, ts_pending));
		SET(ts, struct turnstile, ts_lockobj, mtx);
		SET(ts, struct turnstile, ts_owner, worker);
		tailq_insert_tail(c, AT(ts, struct turnstile, ts_blocked[TS_EXCLUSIVE_QUEUE]), locker,
		    offsetof(struct thread, td_lockq));
		list_insert_head(c, AT(worker, struct thread, td_contested), ts, offsetof(struct turnstile, ts_link));
		SET(locker, struct thread, td_blocked, ts);
		SET(locker, struct thread, td_lockname, lock_name);
		SET(locker, struct thread, td_inhibitors, TDI_LOCK);
		SET(locker, struct thread, td_tsqueue, TS_EXCLUSIVE_QUEUE);
		plant(c, locker, 0, (const char *const[]){ "fork_trampoline", "fork_exit", "*kq_fbsd_locker",
		    "__mtx_lock_sleep", "turnstile_wait", "mi_switch", "sched_switch", "cpu_switch", NULL });
		thread_note(c, locker, "kq_fbsd_lock", "blocked", 1);
		SET(mtx, struct mtx, mtx_lock, worker | MTX_CONTESTED);
		note(c, "owner 0x%llx %d", (unsigned long long)mtx, tid_of(c, worker));
		note(c, "turnstile 0x%llx", (unsigned long long)ts);

		kwrite_u64(m, threads, sleeper);
		kwrite_u64(m, threads + 8, locker);
		kwrite_u64(m, threads + 16, worker);

		/* The module's callout, pending on CPU 0. */
		callout_pend(c, cc[0], co, NOW + SBT_1S + SBT_1S / 4, msym(c, "kq_fbsd_tick"), sc, 0);

		/* Its task, queued on the thread taskqueue; its shutdown handler. */
		task_enqueue(c, tq, task);
		eventhandler_add(c, shutdown, "shutdown_pre_sync", msym(c, "kq_fbsd_shutdown"), sc, 20000);
		SET(sc, struct kq_fbsd_softc, sc_shutdown_tag, kread_u64(m, AT(shutdown, struct eventhandler_list, el_entries.tqh_last)) -
		    offsetof(struct eventhandler_entry_generic, ee.ee_link.tqe_next));
	}

	fill_free_pages(c);
	note(c, "kstack_guard 0x%llx", (unsigned long long)KSTACK_BASE);
}
