/*
 * The FreeBSD amd64 kernel structures kquiesce reads, with FreeBSD's member
 * names and types (FreeBSD 13/14, from the documentation of its headers).
 * Members no reader needs are left out: readers take every offset from the
 * DWARF of the image compiled from this file, as they do from a real
 * kernel.debug, so only names and types have to match FreeBSD's.
 *
 * Compiled into the fixture kernel (kernel.c), the fixture module
 * (kq_fbsd.c) and the generator that lays the structures out in the dumps.
 */
#ifndef KQ_FBSD_TYPES_H
#define KQ_FBSD_TYPES_H

#include <stddef.h>
#include <stdint.h>
#ifndef __cplusplus
#include <stdbool.h>
#endif

typedef int64_t register_t;
typedef uint64_t vm_offset_t;
typedef uint64_t vm_paddr_t;
typedef int32_t lwpid_t;
typedef int32_t pid_t;
typedef char *caddr_t;
typedef int64_t sbintime_t;
typedef unsigned char u_char;
typedef unsigned short u_short;
typedef unsigned int u_int;
typedef unsigned long u_long;

#define MAXCPU 256
#define MAXCOMLEN 19
#define KSTACK_PAGES 4

/* sys/queue.h: list heads and links as FreeBSD spells their members. */
#define FBSD_LIST_HEAD(name, type) struct name { struct type *lh_first; }
#define FBSD_LIST_ENTRY(type) struct { struct type *le_next; struct type **le_prev; }
#define FBSD_TAILQ_HEAD(name, type) struct name { struct type *tqh_first; struct type **tqh_last; }
#define FBSD_TAILQ_ENTRY(type) struct { struct type *tqe_next; struct type **tqe_prev; }
#define FBSD_STAILQ_HEAD(name, type) struct name { struct type *stqh_first; struct type **stqh_last; }
#define FBSD_STAILQ_ENTRY(type) struct { struct type *stqe_next; }
#define FBSD_SLIST_ENTRY(type) struct { struct type *sle_next; }

struct thread;
struct proc;
struct module;
struct linker_file;
struct turnstile;
struct witness;
struct ucred;
struct vm_object;
struct callout;

/* sys/_lock.h, sys/_mutex.h */
struct lock_object {
	const char *lo_name;	/* individual lock name */
	u_int lo_flags;
	u_int lo_data;
	struct witness *lo_witness;
};

struct mtx {
	struct lock_object lock_object;
	volatile uintptr_t mtx_lock;	/* owner thread and flag bits */
};

struct mtx_padalign {
	struct lock_object lock_object;
	volatile uintptr_t mtx_lock;
} __attribute__((aligned(64)));

/* mtx_lock: an owner thread pointer or'ed with these. */
#define MTX_RECURSED 0x1
#define MTX_CONTESTED 0x2
#define MTX_UNOWNED 0x4
#define MTX_FLAGMASK (MTX_RECURSED | MTX_CONTESTED | MTX_UNOWNED)

/* lock_object.lo_flags: the lock class index lives in bits 24-27. */
#define LO_CLASSSHIFT 24
#define LO_CLASSMASK 0x0f000000
#define LO_INITIALIZED 0x00010000

/* kern/subr_lock.c: lock_classes[] is indexed by a lock's class. */
struct lock_class {
	const char *lc_name;
	u_int lc_flags;
	void (*lc_assert)(const struct lock_object *lock, int what);
	void (*lc_ddb_show)(const struct lock_object *lock);
	void (*lc_lock)(struct lock_object *lock, uintptr_t how);
	int (*lc_owner)(const struct lock_object *lock, struct thread **owner);
	uintptr_t (*lc_unlock)(struct lock_object *lock);
};
#define LOCK_CLASS_MAX (LO_CLASSMASK >> LO_CLASSSHIFT)

/* sys/_sx.h, sys/_rwlock.h, sys/_lockmgr.h: the lock word of each class. */
struct sx {
	struct lock_object lock_object;
	volatile uintptr_t sx_lock;	/* owner, or a count of sharers, and flag bits */
};
#define SX_LOCK_SHARED 0x01
#define SX_LOCK_UNLOCKED SX_LOCK_SHARED	/* shared with no sharers */

struct rwlock {
	struct lock_object lock_object;
	volatile uintptr_t rw_lock;
};

struct lock {
	struct lock_object lock_object;
	volatile uintptr_t lk_lock;
	u_int lk_exslpfail;
	int lk_timo;
	int lk_pri;
};

FBSD_TAILQ_HEAD(threadqueue, thread);

/* kern/subr_turnstile.c */
struct turnstile {
	struct mtx ts_lock;
	struct threadqueue ts_blocked[2];	/* exclusive, shared waiters */
	struct threadqueue ts_pending;
	FBSD_LIST_ENTRY(turnstile) ts_hash;
	FBSD_LIST_ENTRY(turnstile) ts_link;
	FBSD_LIST_HEAD(, turnstile) ts_free;
	struct lock_object *ts_lockobj;
	struct thread *ts_owner;
};
#define TS_EXCLUSIVE_QUEUE 0
#define TS_SHARED_QUEUE 1

/* sys/_callout.h */
typedef void callout_func_t(void *);

struct callout {
	union {
		FBSD_LIST_ENTRY(callout) le;
		FBSD_SLIST_ENTRY(callout) sle;
		FBSD_TAILQ_ENTRY(callout) tqe;
	} c_links;
	sbintime_t c_time;		/* when it fires */
	sbintime_t c_precision;
	void *c_arg;
	callout_func_t *c_func;
	struct lock_object *c_lock;
	short c_flags;
	short c_iflags;
	volatile int c_cpu;
};
#define CALLOUT_ACTIVE 0x0002		/* c_flags */
#define CALLOUT_PENDING 0x0004		/* c_iflags */
#define CALLOUT_MPSAFE 0x0008

FBSD_LIST_HEAD(callout_list, callout);
FBSD_TAILQ_HEAD(callout_tailq, callout);

/* kern/kern_timeout.c: what each CPU's callout wheel is running. */
struct cc_exec {
	struct callout *cc_curr;
	callout_func_t *cc_drain;
	void *cc_last_func;
	void *cc_last_arg;
	callout_func_t *ce_migration_func;
	void *ce_migration_arg;
	sbintime_t ce_migration_time;
	sbintime_t ce_migration_prec;
	int ce_migration_cpu;
	bool cc_cancel;
	bool cc_waiting;
};

struct callout_cpu {
	struct mtx_padalign cc_lock;
	struct cc_exec cc_exec_entity[2];
	struct callout *cc_next;
	struct callout_list *cc_callwheel;	/* callwheelsize buckets */
	struct callout_tailq cc_expireq;
	sbintime_t cc_firstevent;
	sbintime_t cc_lastscan;
	struct thread *cc_thread;
	u_int cc_bucket;
};
/* callout_hash(): the bucket of a time is its bits 24..(24+log2 callwheelsize). */
#define CC_HASH_SHIFT 8

/* sys/_task.h, kern/subr_taskqueue.c */
typedef void task_fn_t(void *context, int pending);

struct task {
	FBSD_STAILQ_ENTRY(task) ta_link;	/* the queue's pending tasks */
	uint16_t ta_pending;
	uint8_t ta_priority;
	uint8_t ta_flags;
	task_fn_t *ta_func;
	void *ta_context;
};

struct taskqueue_busy {
	struct task *tb_running;		/* the task a queue's thread runs */
	FBSD_TAILQ_ENTRY(taskqueue_busy) tb_link;
};

typedef void (*taskqueue_enqueue_fn)(void *context);

struct taskqueue {
	FBSD_STAILQ_HEAD(, task) tq_queue;
	taskqueue_enqueue_fn tq_enqueue;
	void *tq_context;
	char *tq_name;
	FBSD_TAILQ_HEAD(, taskqueue_busy) tq_active;
	struct mtx tq_mutex;
	struct thread **tq_threads;		/* its threads sleep on the queue */
	int tq_tcount;
	int tq_spin;
	int tq_flags;
	int tq_callouts;
};

/* sys/_eventhandler.h, sys/eventhandler.h, kern/subr_eventhandler.c */
struct eventhandler_entry {
	FBSD_TAILQ_ENTRY(eventhandler_entry) ee_link;
	int ee_priority;
	void *ee_arg;
};
#define EHE_DEAD_PRIORITY (-1)

/* What eventhandler_register() allocates: the entry, then the handler. */
struct eventhandler_entry_generic {
	struct eventhandler_entry ee;
	void *func;
};

struct eventhandler_list {
	char *el_name;
	int el_flags;
	u_int el_runcount;
	struct mtx el_lock;
	FBSD_TAILQ_ENTRY(eventhandler_list) el_link;	/* eventhandler_lists */
	FBSD_TAILQ_HEAD(, eventhandler_entry) el_entries;
};

/* x86/include/segments.h */
struct region_descriptor {
	uint64_t rd_limit:16;
	uint64_t rd_base:64;
} __attribute__((packed));

/* amd64/include/pcb.h: what cpu_switch()/savectx() save. */
struct pcb {
	register_t pcb_r15;
	register_t pcb_r14;
	register_t pcb_r13;
	register_t pcb_r12;
	register_t pcb_rbp;
	register_t pcb_rsp;
	register_t pcb_rbx;
	register_t pcb_rip;
	register_t pcb_fsbase;
	register_t pcb_gsbase;
	register_t pcb_kgsbase;
	register_t pcb_cr0;
	register_t pcb_cr2;
	register_t pcb_cr3;
	register_t pcb_cr4;
	register_t pcb_dr0;
	register_t pcb_dr1;
	register_t pcb_dr2;
	register_t pcb_dr3;
	register_t pcb_dr6;
	register_t pcb_dr7;
	struct region_descriptor pcb_gdt;
	struct region_descriptor pcb_idt;
	struct region_descriptor pcb_ldt;
	uint16_t pcb_tr;
	u_int pcb_flags;
	uint16_t pcb_initial_fpucw;
	caddr_t pcb_onfault;
	uint64_t pcb_saved_ucr3;
	register_t pcb_tssp;
	register_t pcb_efer;
	register_t pcb_star;
	register_t pcb_lstar;
	register_t pcb_cstar;
	register_t pcb_sfmask;
	struct savefpu *pcb_save;
	uint64_t pcb_pad[5];
};

/* amd64/include/frame.h */
struct trapframe {
	register_t tf_rdi;
	register_t tf_rsi;
	register_t tf_rdx;
	register_t tf_rcx;
	register_t tf_r8;
	register_t tf_r9;
	register_t tf_rax;
	register_t tf_rbx;
	register_t tf_rbp;
	register_t tf_r10;
	register_t tf_r11;
	register_t tf_r12;
	register_t tf_r13;
	register_t tf_r14;
	register_t tf_r15;
	uint32_t tf_trapno;
	uint16_t tf_fs;
	uint16_t tf_gs;
	register_t tf_addr;
	uint32_t tf_flags;
	uint16_t tf_es;
	uint16_t tf_ds;
	register_t tf_err;
	register_t tf_rip;
	register_t tf_cs;
	register_t tf_rflags;
	register_t tf_rsp;
	register_t tf_ss;
};

/* amd64/include/proc.h */
struct mdthread {
	int md_spinlock_count;
	register_t md_saved_flags;
	register_t md_spurflt_addr;
	vm_offset_t md_stack_base;
};

/* sys/proc.h */
struct thread {
	struct mtx *volatile td_lock;
	struct proc *td_proc;
	FBSD_TAILQ_ENTRY(thread) td_plist;	/* threads of the process */
	FBSD_TAILQ_ENTRY(thread) td_runq;
	FBSD_TAILQ_ENTRY(thread) td_slpq;
	FBSD_TAILQ_ENTRY(thread) td_lockq;	/* turnstile waiters */
	FBSD_LIST_ENTRY(thread) td_hash;
	struct cpuset *td_cpuset;
	struct seltd *td_sel;
	struct sleepqueue *td_sleepqueue;
	struct turnstile *td_turnstile;
	struct rl_q_entry *td_rlqe;
	struct umtx_q *td_umtxq;
	lwpid_t td_tid;
	u_char td_lend_user_pri;
	u_char td_epochnest;
	int td_flags;
	int td_inhibitors;
	int td_pflags;
	int td_dupfd;
	int td_sqqueue;
	void *td_wchan;			/* sleep channel */
	const char *td_wmesg;		/* why it sleeps */
	volatile u_char td_owepreempt;
	u_char td_tsqueue;
	short td_locks;
	short td_rw_rlocks;
	short td_sx_slocks;
	short td_lk_slocks;
	short td_stopsched;
	struct turnstile *td_blocked;	/* lock it is blocked on */
	const char *td_lockname;
	FBSD_LIST_HEAD(, turnstile) td_contested;
	struct lock_list_entry *td_sleeplocks;
	int td_intr_nesting_level;
	int td_pinned;
	struct ucred *td_ucred;
	struct plimit *td_limit;
	int td_slptick;
	int td_blktick;
	int td_swvoltick;
	int td_swinvoltick;
	u_int td_cow;
	uint64_t td_incruntime;
	uint64_t td_runtime;
	u_int td_pticks;
	u_int td_sticks;
	u_int td_iticks;
	u_int td_uticks;
	int td_intrval;
	char td_name[MAXCOMLEN + 1];
	int td_dbgflags;
	int td_no_sleeping;
	sbintime_t td_sleeptimo;
	u_char td_rqindex;
	u_char td_base_pri;
	u_char td_priority;
	u_char td_pri_class;
	u_char td_user_pri;
	u_char td_base_user_pri;
	struct pcb *td_pcb;		/* saved context, at the top of the kstack */
	enum td_states {
		TDS_INACTIVE = 0x0,
		TDS_INHIBITED,
		TDS_CAN_RUN,
		TDS_RUNQ,
		TDS_RUNNING
	} td_state;
	u_int td_cowgen;
	struct callout td_slpcallout;	/* sleep timeout */
	struct trapframe *td_frame;
	struct vm_object *td_kstack_obj;
	vm_offset_t td_kstack;		/* kernel VA of the kstack */
	int td_kstack_pages;
	volatile u_int td_critnest;
	struct mdthread td_md;
	int td_errno;
	int td_lastcpu;
	int td_oncpu;			/* NOCPU (-1) unless running */
};
#define NOCPU (-1)
#define TDI_SUSPENDED 0x0001
#define TDI_SLEEPING 0x0002
#define TDI_SWAPPED 0x0004
#define TDI_LOCK 0x0008
#define TDI_IWAIT 0x0010
#define TDF_INMEM 0x00000004
#define TDF_SINTR 0x00000008
#define TDF_TIMEOUT 0x00000010
#define TDF_IDLETD 0x00000020
#define TDP_KTHREAD 0x00200000

FBSD_LIST_HEAD(proclist, proc);

struct proc {
	FBSD_LIST_ENTRY(proc) p_list;		/* allproc */
	FBSD_TAILQ_HEAD(, thread) p_threads;
	struct mtx p_slock;
	struct ucred *p_ucred;
	struct filedesc *p_fd;
	struct pstats *p_stats;
	struct plimit *p_limit;
	struct sigacts *p_sigacts;
	int p_flag;
	int p_flag2;
	enum p_states {
		PRS_NEW = 0,
		PRS_NORMAL,
		PRS_ZOMBIE
	} p_state;
	pid_t p_pid;
	FBSD_LIST_ENTRY(proc) p_hash;
	FBSD_LIST_ENTRY(proc) p_pglist;
	struct proc *p_pptr;
	FBSD_LIST_ENTRY(proc) p_sibling;
	FBSD_LIST_HEAD(, proc) p_children;
	struct mtx p_mtx;
	int p_numthreads;
	char p_comm[MAXCOMLEN + 1];
	struct vmspace *p_vmspace;
};
#define P_SYSTEM 0x00200
#define P_KPROC 0x00004
#define P_INMEM 0x10000000

/* sys/pcpu.h */
struct pcpu {
	struct thread *pc_curthread;
	struct thread *pc_idlethread;
	struct thread *pc_fpcurthread;
	struct thread *pc_deadthread;
	struct pcb *pc_curpcb;
	void *pc_sched;
	uint64_t pc_switchtime;
	int pc_switchticks;
	u_int pc_cpuid;
	FBSD_STAILQ_ENTRY(pcpu) pc_allcpu;
	struct lock_list_entry *pc_spinlocks;
	long pc_cp_time[5];
	struct device *pc_device;
	void *pc_netisr;
	int pc_unused1;
	int pc_domain;
	struct rm_queue *pc_rm_queue;
	uintptr_t pc_dynamic;		/* this CPU's dpcpu_off */
	uint64_t pc_early_dummy_counter;
	uintptr_t pc_zpcpu_offset;
	struct pcpu *pc_prvspace;
	struct pmap *pc_curpmap;
	struct amd64tss *pc_tssp;
	register_t pc_rsp0;
	register_t pc_scratch_rsp;
	u_int pc_apic_id;
	u_int pc_acpi_id;
};

/* sys/linker.h */
typedef struct linker_file *linker_file_t;
typedef FBSD_TAILQ_HEAD(, linker_file) linker_file_list_t;

struct common_symbol {
	FBSD_STAILQ_ENTRY(common_symbol) link;
	char *name;
	caddr_t address;
};

struct linker_file {
	struct kobj_ops *ops;		/* KOBJ_FIELDS */
	int refs;			/* reference count */
	int userrefs;			/* kldload(2) count */
	int flags;
	FBSD_TAILQ_ENTRY(linker_file) link;	/* linker_files */
	char *filename;			/* "kernel", "kq_fbsd.ko" */
	char *pathname;
	int id;
	caddr_t address;		/* load address */
	size_t size;
	caddr_t ctors_addr;
	long ctors_size;
	int ndeps;
	linker_file_t *deps;
	FBSD_STAILQ_HEAD(, common_symbol) common;
	FBSD_TAILQ_HEAD(, module) modules;	/* modules of this file */
	FBSD_TAILQ_ENTRY(linker_file) loaded;
	int loadcnt;
	int nenabled;
	int fbt_nentries;
};
#define LINKER_FILE_LINKED 0x1

/* kern/link_elf_obj.c: where the object linker put each section of a .ko. */
typedef struct {
	void *addr;
	uint64_t size;
	int flags;
	int sec;			/* section index in the .ko */
	char *name;
} Elf_progent;

struct elf_file {
	struct linker_file lf;		/* the linker_file is its first member */
	int preloaded;
	caddr_t address;
	struct vm_object *object;
	void *e_shdr;
	Elf_progent *progtab;
	u_int nprogtab;
	void *relatab;
	u_int nrelatab;
	void *reltab;
	int nreltab;
};

/* kern/kern_module.c */
typedef int (*modeventhand_t)(struct module *, int, void *);
typedef union modspecific {
	int intval;
	u_int uintval;
	long longval;
	u_long ulongval;
} modspecific_t;

struct module {
	FBSD_TAILQ_ENTRY(module) link;		/* all modules */
	FBSD_TAILQ_ENTRY(module) flink;		/* modules of one file */
	struct linker_file *file;
	int refs;
	int id;
	char *name;
	modeventhand_t handler;
	void *arg;
	modspecific_t data;
};
typedef FBSD_TAILQ_HEAD(modulelist, module) modulelist_t;

/* sys/msgbuf.h */
struct msgbuf {
	char *msg_ptr;
	u_int msg_magic;
	u_int msg_size;
	u_int msg_wseq;
	u_int msg_rseq;
	u_int msg_cksum;
	u_int msg_seqmod;
	int msg_lastpri;
	u_int msg_flags;
	struct mtx msg_lock;
};
#define MSG_MAGIC 0x063062

/* amd64 address space (vmparam.h) */
#define KERNBASE 0xffffffff80000000ull
#define VM_MIN_KERNEL_ADDRESS 0xfffffe0000000000ull
#define DMAP_MIN_ADDRESS 0xfffff80000000000ull
#define DMAP_MAX_ADDRESS 0xfffffc0000000000ull

#endif
