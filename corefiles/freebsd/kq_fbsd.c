/*
 * kq_fbsd.ko: the fixture's FreeBSD kernel module. Its threads sleep on a
 * channel in its data, wait for and hold its mutex, and it keeps a callout
 * pending on one of its functions: every kind of use kquiesce must report.
 * Compiled as FreeBSD compiles modules for amd64 (a relocatable object with
 * the kernel code model); the generator links it where it says it was loaded.
 */
#include "kq_fbsd.h"

#define MOD_LOAD 0
#define MOD_UNLOAD 1
#define SBT_1S ((sbintime_t)1 << 32)
#define MTX_DEF 0x00000000

int _sleep(const void *ident, struct lock_object *lock, int priority, const char *wmesg,
    sbintime_t sbt, sbintime_t pr, int flags);
void __mtx_lock_sleep(volatile uintptr_t *c, uintptr_t v);
int critical_exit(void);
void mtx_init(struct mtx *m, const char *name, const char *type, int opts);
void callout_init_mtx(struct callout *c, struct mtx *m, int flags);
int callout_reset_sbt_on(struct callout *c, sbintime_t sbt, sbintime_t prec,
    callout_func_t *func, void *arg, int cpu, int flags);
void sx_init_flags(struct sx *sx, const char *description, int opts);
int _sx_xlock(struct sx *sx, int opts, const char *file, int line);
int taskqueue_enqueue(struct taskqueue *queue, struct task *task);
void *eventhandler_register(struct eventhandler_list *list, const char *name, void *func, void *arg,
    int priority);
extern struct taskqueue *taskqueue_thread;
int kthread_add(void (*func)(void *), void *arg, struct proc *p, struct thread **newtdp,
    int flags, int pages, const char *fmt, ...);

static struct kq_fbsd_softc kq_fbsd_sc;
static int kq_fbsd_chan;			/* the sleepers' wait channel */
static struct thread *kq_fbsd_threads[3];

#define MFUNC __attribute__((noinline, used))

/* The callout: rearms itself every second. */
MFUNC static void kq_fbsd_tick(void *arg)
{
	struct kq_fbsd_softc *sc = arg;

	sc->sc_ticks++;
	callout_reset_sbt_on(&sc->sc_callout, SBT_1S, 0, kq_fbsd_tick, sc, -1, 0);
}

/* The task: counts how often it was queued. */
MFUNC static void kq_fbsd_task(void *context, int pending)
{
	struct kq_fbsd_softc *sc = context;

	sc->sc_ticks += pending;
}

/* On shutdown_pre_sync: stops the threads. */
MFUNC static void kq_fbsd_shutdown(void *arg, int howto)
{
	struct kq_fbsd_softc *sc = arg;

	sc->sc_stop = 1 + howto;
}

/* Sleeps on kq_fbsd_chan until unloaded, holding sc_sx. */
MFUNC static void kq_fbsd_sleeper(void *arg)
{
	_sx_xlock(&kq_fbsd_sc.sc_sx, 0, __FILE__, __LINE__);
	while (!kq_fbsd_sc.sc_stop)
		_sleep(&kq_fbsd_chan, NULL, 80, "kqslp", 0, 0, 0);
	kq_fbsd_threads[0] = arg;
}

/* Waits for sc_mtx while kq_fbsd_worker holds it. */
MFUNC static void kq_fbsd_locker(void *arg)
{
	uintptr_t v;

	while (!kq_fbsd_sc.sc_stop) {
		v = kq_fbsd_sc.sc_mtx.mtx_lock;
		if (v != MTX_UNOWNED)
			__mtx_lock_sleep(&kq_fbsd_sc.sc_mtx.mtx_lock, v);
		kq_fbsd_sc.sc_ticks--;
	}
	kq_fbsd_threads[1] = arg;
}

/* Holds sc_mtx and is preempted inside the module. */
MFUNC static void kq_fbsd_worker(void *arg)
{
	while (!kq_fbsd_sc.sc_stop) {
		kq_fbsd_sc.sc_ticks += 2;
		critical_exit();
	}
	kq_fbsd_threads[2] = arg;
}

MFUNC static int kq_fbsd_modevent(struct module *mod, int what, void *arg)
{
	struct kq_fbsd_softc *sc = &kq_fbsd_sc;

	switch (what) {
	case MOD_LOAD:
		mtx_init(&sc->sc_mtx, "kq_fbsd_mtx", NULL, MTX_DEF);
		sx_init_flags(&sc->sc_sx, "kq_fbsd_sx", 0);
		callout_init_mtx(&sc->sc_callout, &sc->sc_mtx, 0);
		callout_reset_sbt_on(&sc->sc_callout, SBT_1S, 0, kq_fbsd_tick, sc, -1, 0);
		sc->sc_task.ta_func = kq_fbsd_task;
		sc->sc_task.ta_context = sc;
		taskqueue_enqueue(taskqueue_thread, &sc->sc_task);
		sc->sc_shutdown_tag = eventhandler_register(NULL, "shutdown_pre_sync", kq_fbsd_shutdown, sc, 20000);
		kthread_add(kq_fbsd_sleeper, sc, NULL, &kq_fbsd_threads[0], 0, 0, "kq_fbsd_sleep");
		kthread_add(kq_fbsd_locker, sc, NULL, &kq_fbsd_threads[1], 0, 0, "kq_fbsd_lock");
		kthread_add(kq_fbsd_worker, sc, NULL, &kq_fbsd_threads[2], 0, 0, "kq_fbsd_work");
		return (0);
	case MOD_UNLOAD:
		sc->sc_stop = 1;
		return (mod != NULL && arg != NULL);
	default:
		return (45);	/* EOPNOTSUPP */
	}
}

/* What DECLARE_MODULE() registers: the module's name and event handler. */
struct kq_fbsd_moduledata {
	const char *name;
	modeventhand_t evhand;
	void *priv;
};
struct kq_fbsd_moduledata kq_fbsd_mod = { "kq_fbsd", kq_fbsd_modevent, NULL };
