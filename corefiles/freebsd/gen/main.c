/*
 * kq_fbsd_gen KERNEL KO OUTDIR [--idle]
 *
 * Lays out a FreeBSD amd64 kernel with kq_fbsd.ko loaded (busy: in use in
 * every way kquiesce reports; --idle: loaded, unused) in a simulated
 * machine, from the fixture kernel image and module, and writes into OUTDIR:
 *   vmcore.minidump  the minidump
 *   vmcore.elf       the full dump
 *   fixture.txt      the facts planted, one a line, for tests
 * Deterministic: the same inputs give the same files.
 */
#include <stdio.h>
#include <string.h>

#include "dumps.h"
#include "machine.h"
#include "scenario.h"

int main(int argc, char **argv)
{
	if (argc < 4 || argc > 5 || (argc == 5 && strcmp(argv[4], "--idle") != 0)) {
		fprintf(stderr, "usage: kq_fbsd_gen KERNEL KO OUTDIR [--idle]\n");
		return 2;
	}
	const char *outdir = argv[3];
	char path[4096];
	struct machine m;
	struct scenario s;

	memset(&s, 0, sizeof(s));
	s.busy = argc == 4;
	snprintf(path, sizeof(path), "%s/fixture.txt", outdir);
	s.manifest = fopen(path, "w");
	if (s.manifest == NULL)
		die("cannot create %s", path);

	machine_init(&m);
	build_scenario(&m, &s, argv[1], argv[2]);
	mark_minidump_pages(&m);

	snprintf(path, sizeof(path), "%s/vmcore.minidump", outdir);
	write_minidump(&m, &s, path);
	snprintf(path, sizeof(path), "%s/vmcore.elf", outdir);
	write_elf_dump(&m, path);
	if (fclose(s.manifest) != 0)
		die("cannot write fixture.txt");
	return 0;
}
