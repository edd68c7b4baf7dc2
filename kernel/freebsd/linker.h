// FreeBSD's loaded files (linker_files: the kernel, each .ko) and the
// modules they declare (`modules`: DECLARE_MODULE), as OS-neutral Modules.
#pragma once
#include <string>
#include <vector>

#include "kernel/freebsd/freebsd_kernel.h"
#include "kernel/kernel.h"
#include "kernel/list_walk.h"

namespace kq {

// What FreeBSD says of one loaded file beyond Module.
struct LinkerFileInfo {
    std::string filename;               // "kq_fbsd.ko"
    std::string pathname;               // "/boot/modules/kq_fbsd.ko"
    int id = 0;                         // kldstat's id
    uint64_t address = 0, size = 0;     // where it was loaded
    int refs = 0, userrefs = 0;
    std::vector<std::string> declared;  // its modules' names ("kq_fbsd")
};

struct FreebsdModules {
    // Every linker file but the kernel: Module::name is the file name
    // without ".ko", addr the struct linker_file, state "Live" once linked
    // ("Linking" before), refcount the references its dependents hold
    // (refs - 1), ranges its sections where the object linker recorded them
    // (elf_file's progtab: text, rodata, data), else the whole load
    // ("image"); sections the same by name; holders the files that depend on
    // it. ko_path is left empty (freebsd_system finds the files).
    std::vector<Module> modules;
    std::vector<LinkerFileInfo> files;  // one per module, same order
    LinkerFileInfo kernel;              // linker_kernel_file
    WalkProblems problems;              // what could not be read
    bool complete() const { return problems.empty(); }

    // A module by its name, its file's name ("kq_fbsd.ko") or the name of a
    // module its file declares; nullptr if none.
    const Module* find(const std::string& name) const;
};

FreebsdModules read_modules(const FreebsdKernel& k);

}  // namespace kq
