/*
 * Kernel stacks as a sleeping FreeBSD thread leaves them: each function of a
 * call chain has pushed its return address and frame pointer and run its
 * prologue, the innermost has called cpu_switch() or savectx(), which saved
 * the registers into a struct pcb. Return addresses are found by
 * disassembling the callers (Capstone): each is the address after the one
 * call that reaches the callee.
 */
#ifndef KQ_FBSD_GEN_STACK_H
#define KQ_FBSD_GEN_STACK_H

#include <stdint.h>

#include "image.h"
#include "machine.h"

struct code {
	struct machine *m;
	const struct symtab *tabs[2];	/* kernel, module */
};

const struct symbol *code_symbol(const struct code *c, const char *name);

/* The only call in `caller` to `callee` (callee "*": the only indirect
 * call): its address, the address after it, and how far below the caller's
 * frame pointer the stack pointer is when it calls. */
struct call_site {
	uint64_t call, ret;
	uint64_t depth;
};
struct call_site call_return(const struct code *c, const char *caller, const char *callee);

struct saved_context {
	uint64_t rip, rsp, rbp;
};

/*
 * Plants the frames of `chain` (outermost caller first, ending with
 * cpu_switch or savectx) below sp0 and returns what that last call saved.
 * A callee written "*name" is reached through a function pointer. One
 * written "!stub@callee" is an interrupt: the caller was interrupted just
 * before its call to `callee`, the CPU and the entry `stub` (a naked
 * IDTVEC() function, which keeps no frame) left a struct trapframe of that
 * kernel-mode context on the stack, and the stub calls the next function.
 * sp0 is the outermost function's stack pointer at its call; lo the lowest
 * address the frames may use.
 */
/* chain[i]'s function name: without "*", "!" or "@callee". */
const char *chain_name(const char *entry, char *buf, size_t size);

struct saved_context plant_chain(const struct code *c, uint64_t sp0, uint64_t lo, const char *const *chain);

#endif
