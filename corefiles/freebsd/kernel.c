/*
 * The fixture's FreeBSD amd64 kernel image: linked at FreeBSD's kernel
 * address (kernel.ld), it carries the variables kquiesce looks up by name and
 * the functions whose frames the generator plants on kernel stacks. Its DWARF
 * (types of fbsd_types.h), symbols and CFI stand in for a real kernel.debug.
 * Nothing here ever runs: the generator writes the variables' values into the
 * dumps, and the function bodies only have to make the calls a real kernel
 * makes so that return addresses land after real call instructions.
 */
#include "fbsd_types.h"

#define PHYS_AVAIL_ENTRIES 128
#define SYS_wait4 7
#define SYS_reboot 55

/* sys/conf/newvers.sh, kern/init_main.c */
char ostype[] = "FreeBSD";
char osrelease[] = "14.1-RELEASE";
char version[] = "FreeBSD 14.1-RELEASE releng/14.1-n267679 GENERIC amd64\n";
int osreldate = 1401000;

/* kern/kern_proc.c, kern/init_main.c */
struct proclist allproc;
int nprocs;
struct proc proc0;
struct thread0_storage {
	struct thread t0st_thread;
	uint64_t t0st_sched[10];
} thread0_st __attribute__((aligned(16)));

/* kern/kern_linker.c, kern/kern_module.c */
static linker_file_list_t linker_files __attribute__((used));
linker_file_t linker_kernel_file;
static modulelist_t modules __attribute__((used));
static int nextid __attribute__((used)) = 1;

/* amd64/amd64/pmap.c, machdep.c */
vm_paddr_t KPML4phys;
vm_paddr_t dmaplimit;
vm_paddr_t kernphys;
vm_paddr_t phys_avail[PHYS_AVAIL_ENTRIES + 2];
vm_paddr_t dump_avail[PHYS_AVAIL_ENTRIES + 2];
long physmem;
struct msgbuf *msgbufp;

/* SMP: kern/subr_pcpu.c, x86/x86/mp_x86.c */
int mp_ncpus;
u_int mp_maxid;
uintptr_t dpcpu_off[MAXCPU];
struct pcpu *cpuid_to_pcpu[MAXCPU];
struct pcpu __pcpu[MAXCPU];
struct pcb stoppcbs[MAXCPU];

/* kern/kern_shutdown.c */
struct pcb dumppcb;
lwpid_t dumptid;
const char *panicstr;

/* kern/subr_lock.c and the lock implementations: a lock's class is its
 * index here, in bits 24-27 of lo_flags. */
struct lock_class lock_class_mtx_spin = { .lc_name = "spin mutex" };
struct lock_class lock_class_mtx_sleep = { .lc_name = "sleep mutex" };
struct lock_class lock_class_sx = { .lc_name = "sx" };
struct lock_class lock_class_rm = { .lc_name = "rm" };
struct lock_class lock_class_rm_sleepable = { .lc_name = "sleepable rm" };
struct lock_class lock_class_rw = { .lc_name = "rw" };
struct lock_class lock_class_lockmgr = { .lc_name = "lockmgr" };
struct lock_class *lock_classes[LOCK_CLASS_MAX + 1] = {
	&lock_class_mtx_spin, &lock_class_mtx_sleep, &lock_class_sx, &lock_class_rm,
	&lock_class_rm_sleepable, &lock_class_rw, &lock_class_lockmgr,
};

/* kern/subr_taskqueue.c: the system-wide queues (TASKQUEUE_DEFINE). */
struct taskqueue *taskqueue_thread;
struct taskqueue *taskqueue_swi;

/* kern/subr_eventhandler.c: every named event's list of handlers. */
static FBSD_TAILQ_HEAD(, eventhandler_list) eventhandler_lists __attribute__((used));

/* kern/kern_mutex.c, kern/kern_clock.c */
struct mtx Giant;
struct mtx blocked_lock;
volatile int ticks;

/*
 * kern/kern_timeout.c: one callout wheel per CPU, in the dynamic per-CPU
 * area: this copy in set_pcpu is the template, CPU n's is at its address
 * plus dpcpu_off[n].
 */
static struct callout_cpu pcpu_entry_cc_cpu __attribute__((section("set_pcpu"), used));
static int callwheelsize __attribute__((used));
static u_int callwheelmask __attribute__((used));

/*
 * amd64/amd64/cpu_switch.S: both save the callee-saved registers, the stack
 * pointer (pointing at the caller's return address) and that return address
 * as pcb_rip.
 */
#define PCB_SAVE(base)							\
	"movq %%r15, %c[r15](" base ")\n\t"				\
	"movq %%r14, %c[r14](" base ")\n\t"				\
	"movq %%r13, %c[r13](" base ")\n\t"				\
	"movq %%r12, %c[r12](" base ")\n\t"				\
	"movq %%rbp, %c[rbp](" base ")\n\t"				\
	"movq %%rsp, %c[rsp](" base ")\n\t"				\
	"movq %%rbx, %c[rbx](" base ")\n\t"				\
	"movq %%rax, %c[rip](" base ")\n\t"
#define PCB_OFFSETS							\
	[r15] "i"(offsetof(struct pcb, pcb_r15)),			\
	[r14] "i"(offsetof(struct pcb, pcb_r14)),			\
	[r13] "i"(offsetof(struct pcb, pcb_r13)),			\
	[r12] "i"(offsetof(struct pcb, pcb_r12)),			\
	[rbp] "i"(offsetof(struct pcb, pcb_rbp)),			\
	[rsp] "i"(offsetof(struct pcb, pcb_rsp)),			\
	[rbx] "i"(offsetof(struct pcb, pcb_rbx)),			\
	[rip] "i"(offsetof(struct pcb, pcb_rip))

/* void cpu_switch(struct thread *old, struct thread *new, struct mtx *mtx) */
__attribute__((naked, used)) void cpu_switch(struct thread *old, struct thread *new, struct mtx *mtx)
{
	__asm__ volatile(
	    "movq %c[pcb](%%rdi), %%r8\n\t"
	    "movq (%%rsp), %%rax\n\t"
	    PCB_SAVE("%%r8")
	    "movq %%rdx, %c[lock](%%rdi)\n\t"
	    "movq %c[pcb](%%rsi), %%r8\n\t"
	    "movq %c[rsp](%%r8), %%rsp\n\t"
	    "movq %c[rbp](%%r8), %%rbp\n\t"
	    "pushq %c[rip](%%r8)\n\t"
	    "ret"
	    :: [pcb] "i"(offsetof(struct thread, td_pcb)),
	       [lock] "i"(offsetof(struct thread, td_lock)), PCB_OFFSETS);
}

/* void savectx(struct pcb *pcb) */
__attribute__((naked, used)) void savectx(struct pcb *pcb)
{
	__asm__ volatile(
	    "movq (%%rsp), %%rax\n\t"
	    PCB_SAVE("%%rdi")
	    "ret"
	    :: PCB_OFFSETS);
}

/* Keeps calls from being folded away. */
volatile uintptr_t kq_fixture_sink;

#define KFUNC __attribute__((noinline, used))

/* kern/sched_ule.c, kern/kern_synch.c */
KFUNC void sched_switch(struct thread *td, int flags)
{
	struct thread *newtd = (struct thread *)kq_fixture_sink;

	td->td_lastcpu = td->td_oncpu;
	cpu_switch(td, newtd, td->td_lock);
	kq_fixture_sink = (uintptr_t)td + flags;
}

KFUNC int mi_switch(int flags)
{
	struct thread *td = (struct thread *)kq_fixture_sink;

	td->td_swvoltick = ticks;
	sched_switch(td, flags);
	return (td->td_errno);
}

KFUNC int critical_exit(void)
{
	struct thread *td = (struct thread *)kq_fixture_sink;

	if (--td->td_critnest == 0 && td->td_owepreempt)
		return (mi_switch(0x0104));	/* SW_INVOL | SWT_OWEPREEMPT */
	return (0);
}

/* x86/x86/local_apic.c: the clock interrupt; leaving it may preempt. */
KFUNC void lapic_handle_timer(struct trapframe *frame)
{
	struct thread *td = (struct thread *)kq_fixture_sink;

	td->td_critnest++;
	td->td_intr_nesting_level++;
	critical_exit();
	kq_fixture_sink = (uintptr_t)frame;
}

/* amd64/amd64/apic_vector.S, IDTVEC(timerint): the CPU pushed the
 * interrupted context; the entry pushes the rest of the trap frame and
 * passes it to the handler. */
__attribute__((naked, used)) void Xtimerint(void)
{
	__asm__ volatile(
	    "subq %c[rip], %%rsp\n\t"
	    "movq %%rsp, %%rdi\n\t"
	    "call lapic_handle_timer\n\t"
	    "jmp doreti"
	    :: [rip] "i"(offsetof(struct trapframe, tf_rip)));
}

/* kern/subr_sleepqueue.c */
KFUNC void sleepq_timeout(void *arg)
{
	kq_fixture_sink = (uintptr_t)arg;
}

KFUNC void sleepq_switch(const void *wchan, int pri)
{
	struct thread *td = (struct thread *)kq_fixture_sink;

	td->td_wchan = (void *)wchan;
	mi_switch(0x0002);	/* SW_VOL | SWT_SLEEPQ */
	kq_fixture_sink = pri;
}

KFUNC void sleepq_wait(const void *wchan, int pri)
{
	sleepq_switch(wchan, pri);
	kq_fixture_sink = (uintptr_t)wchan;
}

KFUNC int _sleep(const void *ident, struct lock_object *lock, int priority, const char *wmesg,
    sbintime_t sbt, sbintime_t pr, int flags)
{
	struct thread *td = (struct thread *)kq_fixture_sink;

	td->td_wmesg = wmesg;
	td->td_sleeptimo = sbt + pr;
	sleepq_wait(ident, priority);
	return (flags + (lock != NULL));
}

/* kern/subr_turnstile.c, kern/kern_mutex.c */
KFUNC void turnstile_wait(struct turnstile *ts, struct thread *owner, int queue)
{
	struct thread *td = (struct thread *)kq_fixture_sink;

	td->td_blocked = ts;
	td->td_lockname = ts->ts_lockobj->lo_name;
	mi_switch(0x0004);	/* SW_VOL | SWT_TURNSTILE */
	kq_fixture_sink = (uintptr_t)owner + queue;
}

KFUNC void __mtx_lock_sleep(volatile uintptr_t *c, uintptr_t v)
{
	struct mtx *m = (struct mtx *)((char *)c - offsetof(struct mtx, mtx_lock));
	struct turnstile *ts = (struct turnstile *)kq_fixture_sink;

	ts->ts_lockobj = &m->lock_object;
	turnstile_wait(ts, (struct thread *)(v & ~(uintptr_t)MTX_FLAGMASK), TS_EXCLUSIVE_QUEUE);
}

KFUNC void mtx_init(struct mtx *m, const char *name, const char *type, int opts)
{
	m->lock_object.lo_name = name;
	m->lock_object.lo_flags = LO_INITIALIZED | opts;
	m->mtx_lock = MTX_UNOWNED;
	kq_fixture_sink = (uintptr_t)type;
}

/* kern/kern_timeout.c */
KFUNC void callout_init_mtx(struct callout *c, struct mtx *m, int flags)
{
	c->c_lock = &m->lock_object;
	c->c_iflags = (short)flags;
	c->c_cpu = 0;
}

KFUNC int callout_reset_sbt_on(struct callout *c, sbintime_t sbt, sbintime_t prec,
    callout_func_t *func, void *arg, int cpu, int flags)
{
	c->c_time = sbt;
	c->c_precision = prec;
	c->c_func = func;
	c->c_arg = arg;
	c->c_cpu = cpu < 0 ? 0 : cpu;
	c->c_iflags |= CALLOUT_PENDING;
	return (flags);
}

KFUNC void softclock_thread(void *arg)
{
	struct callout_cpu *cc = arg;

	for (;;) {
		mi_switch(0x0001 | 0x0200);	/* SW_VOL | SWT_IWAIT */
		if (cc->cc_bucket == (u_int)-1)
			break;
	}
}

/* kern/kern_sx.c */
KFUNC void sx_init_flags(struct sx *sx, const char *description, int opts)
{
	sx->lock_object.lo_name = description;
	sx->lock_object.lo_flags = LO_INITIALIZED | (2u << LO_CLASSSHIFT) | opts;
	sx->sx_lock = SX_LOCK_UNLOCKED;
}

KFUNC int _sx_xlock(struct sx *sx, int opts, const char *file, int line)
{
	sx->sx_lock = kq_fixture_sink;
	return (opts + (file != NULL) + line);
}

/* kern/subr_taskqueue.c */
KFUNC int taskqueue_enqueue(struct taskqueue *queue, struct task *task)
{
	task->ta_pending = 1;
	queue->tq_queue.stqh_first = task;
	return (0);
}

KFUNC void taskqueue_task_nop_fn(void *context, int pending)
{
	kq_fixture_sink = (uintptr_t)context + pending;
}

KFUNC void taskqueue_thread_loop(void *arg)
{
	struct taskqueue **tqp = arg;
	struct taskqueue *tq = *tqp;

	while (tq->tq_flags & 1)	/* TQ_FLAGS_ACTIVE */
		_sleep(tq, &tq->tq_mutex.lock_object, 0, "-", 0, 0, 0);
	kq_fixture_sink = (uintptr_t)tq;
}

/* kern/subr_eventhandler.c */
KFUNC void *eventhandler_register(struct eventhandler_list *list, const char *name, void *func, void *arg,
    int priority)
{
	kq_fixture_sink = (uintptr_t)list + (uintptr_t)name + (uintptr_t)func + (uintptr_t)arg + priority;
	return ((void *)kq_fixture_sink);
}

/* kern/kern_shutdown.c: a kernel handler on shutdown_pre_sync. */
KFUNC void poweroff_wait(void *junk, int howto)
{
	kq_fixture_sink = (uintptr_t)junk + howto;
}

/* kern/kern_kthread.c, kern/kern_fork.c */
KFUNC int kthread_add(void (*func)(void *), void *arg, struct proc *p, struct thread **newtdp,
    int flags, int pages, const char *fmt, ...)
{
	kq_fixture_sink = (uintptr_t)func + (uintptr_t)arg + (uintptr_t)fmt + flags + pages;
	if (newtdp != NULL)
		*newtdp = p != NULL ? p->p_threads.tqh_first : NULL;
	return (0);
}

KFUNC void fork_exit(void (*callout)(void *, struct trapframe *), void *arg, struct trapframe *frame)
{
	struct thread *td = (struct thread *)kq_fixture_sink;

	td->td_critnest = 0;
	callout(arg, frame);
	kq_fixture_sink = (uintptr_t)frame;
}

/* kern/sched_ule.c, x86/x86/cpu_machdep.c, x86/x86/mp_x86.c */
KFUNC void cpustop_handler(void)
{
	u_int cpu = (u_int)kq_fixture_sink;

	/*
	 * Reached from the stop IPI's interrupt frame; the fixture plants it
	 * as if cpu_idle() had called it.
	 */
	savectx(&stoppcbs[cpu]);
	kq_fixture_sink = cpu;
}

KFUNC void cpu_idle(int busy)
{
	if (busy >= 0)
		cpustop_handler();
	kq_fixture_sink = busy;
}

KFUNC void sched_idletd(void *dummy)
{
	for (;;) {
		if (kq_fixture_sink & 1)
			mi_switch(0x0001 | 0x0800);	/* SW_VOL | SWT_IDLE */
		cpu_idle(ticks);
		if (dummy == NULL)
			break;
	}
}

/* kern/kern_shutdown.c */
KFUNC void doadump(int textdump)
{
	savectx(&dumppcb);
	dumptid = ((struct thread *)kq_fixture_sink)->td_tid;
	kq_fixture_sink = textdump;
}

KFUNC int kern_reboot(int howto)
{
	doadump(howto & 1);
	return (howto);
}

/*
 * vm/vm_glue.c: thread0's work after boot. (Not last in .text: mi_startup's
 * call never returns, so its return address is the function's end.)
 */
KFUNC void swapper(void)
{
	for (;;)
		_sleep(&proc0, NULL, 84, "swapin", 0, 0, 0);
}

/* kern/init_main.c */
KFUNC void mi_startup(void)
{
	swapper();
}

/* kern/kern_exit.c */
KFUNC int kern_wait6(struct thread *td, int idtype, int id, int *status, int options)
{
	return (_sleep(td->td_proc, &td->td_proc->p_mtx.lock_object, 92 | 0x100, "wait", 0, 0,
	    options + idtype + id + (status != NULL)));
}

/* System calls, through the table amd64_syscall() calls into. */
KFUNC int sys_wait4(struct thread *td, void *uap)
{
	return (kern_wait6(td, 0, -1, uap, 0));
}

KFUNC int sys_reboot(struct thread *td, void *uap)
{
	return (kern_reboot((int)(uintptr_t)uap) + (td == NULL));
}

typedef int sy_call_t(struct thread *, void *);
struct sysent {
	int sy_narg;
	sy_call_t *sy_call;
};
struct sysent sysent[64] = {
	[SYS_wait4] = { 4, sys_wait4 },
	[SYS_reboot] = { 1, sys_reboot },
};

/* amd64/amd64/trap.c */
KFUNC void amd64_syscall(struct thread *td, int traced)
{
	struct trapframe *frame = td->td_frame;
	struct sysent *se = &sysent[frame->tf_rax & 63];

	td->td_errno = se->sy_call(td, (void *)frame->tf_rdi);
	kq_fixture_sink = traced;
}

/*
 * amd64/amd64/exception.S, locore.S: the code of the outermost frames of
 * kernel stacks. New threads start in fork_trampoline, which calls
 * fork_exit(%r12 = function, %rbx = argument, frame); system calls enter at
 * fast_syscall_common, the trap frame on the stack; the boot processor
 * starts at btext, where thread0's stack begins.
 */
__asm__(
    "	.text\n"
    "	.globl	fork_trampoline\n"
    "	.type	fork_trampoline, @function\n"
    "fork_trampoline:\n"
    "	movq	%r12, %rdi\n"
    "	movq	%rbx, %rsi\n"
    "	movq	%rsp, %rdx\n"
    "	call	fork_exit\n"
    "	jmp	doreti\n"
    "	.size	fork_trampoline, . - fork_trampoline\n"
    "	.globl	fast_syscall_common\n"
    "	.type	fast_syscall_common, @function\n"
    "fast_syscall_common:\n"
    "	movq	%gs:0, %rdi\n"
    "	xorl	%esi, %esi\n"
    "	call	amd64_syscall\n"
    "	.globl	doreti\n"
    "doreti:\n"
    "	iretq\n"
    "	.size	fast_syscall_common, . - fast_syscall_common\n"
    "	.globl	btext\n"
    "	.type	btext, @function\n"
    "btext:\n"
    "	call	mi_startup\n"
    "	hlt\n"
    "	.size	btext, . - btext\n");
