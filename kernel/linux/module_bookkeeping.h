// The kernel's own records of a loaded module: objects that point into the
// module only because it is loaded (its sysfs section, note and parameter
// attributes, the vmap_area and vm_struct of its memory, ftrace's records
// of its functions, its static call sites), and its struct module, which
// the modules list, the module tree, sysfs and kernfs point into. Also the
// records that point into it only because it reuses memory another module
// freed (that module's init sections in its sect_attrs, removed ftrace
// records), and the module loader's leftovers (mod_tree's address bounds,
// the ORC sort's tables). Words there say the module is loaded, not that
// anything uses it; a raw reference scan sets them apart.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernel/kernel.h"
#include "kernel/linux/linux_kernel.h"

namespace kq {

struct BookkeepingObject {
    uint64_t start = 0, size = 0;  // kernel virtual address
    std::string what;              // "sect_attrs of kq_idle (14 sections)" ...
    bool contains(uint64_t a) const { return a - start < size; }
};

struct ModuleBookkeeping {
    std::vector<BookkeepingObject> objects;  // every word inside one of these is bookkeeping
    BookkeepingObject module_struct;         // every word pointing into it is bookkeeping
    std::vector<std::string> problems;       // what could not be read (its words stay evidence)
};

// Finds them exactly, through the struct module of `m` and of the other
// loaded modules (`all`), the vmap_area trees, the static call keys and
// ftrace's page list; every walk is bounded. Never throws.
ModuleBookkeeping module_bookkeeping(const LinuxKernel& k, const Module& m, const std::vector<Module>& all);

}  // namespace kq
