#include "stack.h"

#include "../fbsd_types.h"

#include <capstone/capstone.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct symbol *code_symbol(const struct code *c, const char *name)
{
	for (int i = 0; i < 2; i++) {
		const struct symbol *s = c->tabs[i] ? sym_find(c->tabs[i], name) : NULL;
		if (s != NULL)
			return s;
	}
	die("no function %s", name);
}

/* Disassembles a function; *insns to be freed with cs_free. */
static size_t disassemble(const struct code *c, const struct symbol *fn, csh *h, cs_insn **insns)
{
	if (fn->size == 0)
		die("function %s has no size", fn->name);
	uint8_t *bytes = malloc(fn->size);
	kread(c->m, fn->value, bytes, fn->size);
	if (cs_open(CS_ARCH_X86, CS_MODE_64, h) != CS_ERR_OK)
		die("capstone");
	cs_option(*h, CS_OPT_DETAIL, CS_OPT_ON);
	size_t n = cs_disasm(*h, bytes, fn->size, fn->value, 0, insns);
	free(bytes);
	if (n == 0)
		die("cannot disassemble %s", fn->name);
	return n;
}

/* The stack pointer's distance below the frame pointer as the instruction
 * at index `upto` starts: pushes, pops and %rsp arithmetic after the
 * prologue's mov %rsp,%rbp, in address order. After a return or jump the
 * next instruction is entered with the prologue's depth (the state before
 * the first branch). */
static uint64_t depth_at(csh h, const cs_insn *insns, size_t upto, const char *name)
{
	int64_t depth = 0, prologue = -1;
	size_t i = 0;

	if (upto < 2 || insns[0].id != X86_INS_PUSH || insns[1].id != X86_INS_MOV ||
	    strcmp(insns[0].op_str, "rbp") != 0 || strcmp(insns[1].op_str, "rbp, rsp") != 0)
		die("%s does not start with a frame-pointer prologue", name);
	for (i = 2; i < upto; i++) {
		const cs_insn *in = &insns[i];
		const int branch = cs_insn_group(h, in, CS_GRP_JUMP) || cs_insn_group(h, in, CS_GRP_RET) ||
		    cs_insn_group(h, in, CS_GRP_CALL);
		if (branch && prologue < 0)
			prologue = depth;
		if (in->id == X86_INS_PUSH)
			depth += 8;
		else if (in->id == X86_INS_POP)
			depth -= 8;
		else if ((in->id == X86_INS_SUB || in->id == X86_INS_ADD) && strncmp(in->op_str, "rsp, ", 5) == 0 &&
		    in->detail->x86.operands[1].type == X86_OP_IMM)
			depth += (in->id == X86_INS_SUB ? 1 : -1) * in->detail->x86.operands[1].imm;
		if (in->id == X86_INS_RET || in->id == X86_INS_JMP)
			depth = prologue;
	}
	if (depth < 0)
		die("%s: cannot follow its stack pointer", name);
	return (uint64_t)depth;
}

struct call_site call_return(const struct code *c, const char *caller, const char *callee)
{
	const struct symbol *fn = code_symbol(c, caller);
	const int indirect = strcmp(callee, "*") == 0;
	const uint64_t target = indirect ? 0 : code_symbol(c, callee)->value;
	csh h;
	cs_insn *insns;
	size_t n = disassemble(c, fn, &h, &insns);
	struct call_site site = { 0, 0, 0 };
	int found = 0;

	for (size_t i = 0; i < n; i++) {
		if (insns[i].id != X86_INS_CALL)
			continue;
		const cs_x86_op *op = &insns[i].detail->x86.operands[0];
		const int match = indirect ? op->type != X86_OP_IMM : (op->type == X86_OP_IMM && (uint64_t)op->imm == target);
		if (!match)
			continue;
		site.call = insns[i].address;
		site.ret = insns[i].address + insns[i].size;
		/* Assembly callers at the stack's base keep no frame. */
		if (insns[0].id == X86_INS_PUSH && strcmp(insns[0].op_str, "rbp") == 0)
			site.depth = depth_at(h, insns, i, caller);
		found++;
	}
	cs_free(insns, n);
	cs_close(&h);
	if (found != 1)
		die("%s calls %s %d times, expected once", caller, callee, found);
	return site;
}

const char *chain_name(const char *entry, char *buf, size_t size)
{
	const char *name = entry[0] == '*' || entry[0] == '!' ? entry + 1 : entry;
	const char *at = strchr(name, '@');
	const size_t n = at != NULL ? (size_t)(at - name) : strlen(name);

	if (n + 1 > size)
		die("chain entry %s too long", entry);
	memcpy(buf, name, n);
	buf[n] = '\0';
	return buf;
}

/* The trap frame an interrupt of kernel code at `rip` leaves below `sp`:
 * the CPU aligns the stack to 16 bytes and pushes ss, rsp, rflags, cs and
 * rip, the entry pushes the rest. Returns the frame's address. */
static uint64_t plant_trapframe(const struct code *c, uint64_t sp, uint64_t rip, uint64_t rbp)
{
	const uint64_t tf = (sp & ~15ull) - sizeof(struct trapframe);
	struct trapframe f;

	memset(&f, 0, sizeof(f));
	f.tf_rip = (register_t)rip;
	f.tf_cs = 0x20;		/* GCODE_SEL, SEL_KPL */
	f.tf_rflags = 0x246;
	f.tf_rsp = (register_t)sp;
	f.tf_ss = 0x28;		/* GDATA_SEL, SEL_KPL */
	f.tf_rbp = (register_t)rbp;
	f.tf_trapno = 0xef;	/* APIC_TIMER_INT's vector */
	kwrite(c->m, tf, &f, sizeof(f));
	return tf;
}

struct saved_context plant_chain(const struct code *c, uint64_t sp0, uint64_t lo, const char *const *chain)
{
	uint64_t sp = sp0, rbp = 0;
	struct saved_context ctx = { 0, 0, 0 };
	struct call_site site[32];
	size_t n = 0;

	/* site[i]: the call from chain[i] to chain[i + 1], or, when chain[i + 1]
	 * is an interrupt, the call chain[i] was about to make. */
	while (chain[n + 1] != NULL) {
		char caller[64], callee[64];
		chain_name(chain[n], caller, sizeof(caller));
		if (chain[n + 1][0] == '!') {
			const char *at = strchr(chain[n + 1], '@');
			if (at == NULL)
				die("interrupt %s names no call", chain[n + 1]);
			snprintf(callee, sizeof(callee), "%s", at + 1);
		} else if (chain[n + 1][0] == '*') {
			snprintf(callee, sizeof(callee), "*");
		} else {
			chain_name(chain[n + 1], callee, sizeof(callee));
		}
		if (n + 1 >= sizeof(site) / sizeof(site[0]))
			die("call chain too long");
		site[n] = call_return(c, caller, callee);
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		if (chain[i + 1][0] == '!') {
			/* Interrupted before its call; the entry keeps no frame of its own. */
			sp = plant_trapframe(c, sp, site[i].call, rbp);
			continue;
		}
		sp -= 8;
		kwrite_u64(c->m, sp, site[i].ret);
		if (i + 1 == n) {
			/* cpu_switch/savectx: no prologue; the pcb's rsp points at the return address. */
			ctx.rip = site[i].ret;
			ctx.rsp = sp;
			ctx.rbp = rbp;
			break;
		}
		/* chain[i + 1] runs: saves the frame pointer, then uses its frame. */
		sp -= 8;
		kwrite_u64(c->m, sp, rbp);
		rbp = sp;
		for (uint64_t a = sp - site[i + 1].depth; a < sp; a += 8)
			kwrite_u64(c->m, a, 0);
		sp -= site[i + 1].depth;
		if (sp < lo + 64)
			die("stack overflow planting %s", chain[i + 1]);
	}
	return ctx;
}
