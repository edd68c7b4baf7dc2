// The `kmod` subcommands. Each registers itself under the `kmod` word.
#pragma once
#include <functional>
#include <set>
#include <string>

#include <lldb/API/LLDB.h>

#include "plugin/args.h"

namespace kq {

// A subcommand body: writes its text to `out`; throws kq::Error for a
// one-line error. Progress lines go to the debugger's error stream at once.
using CommandBody = std::function<void(lldb::SBDebugger&, const Args&, std::string& out)>;

struct CommandSpec {
    const char* name;
    const char* help;   // one line
    const char* usage;  // syntax and options
    std::set<std::string> flags;
    std::set<std::string> with_value;
    CommandBody body;
};

void add_command(lldb::SBCommand& kmod, const CommandSpec& spec);
// Writes a progress line to the user now, not when the command ends.
void progress(lldb::SBDebugger& dbg, const std::string& line);

void register_core(lldb::SBCommand& kmod);
void register_attach(lldb::SBCommand& kmod);
void register_list(lldb::SBCommand& kmod);
void register_threads(lldb::SBCommand& kmod);
void register_bt(lldb::SBCommand& kmod);
void register_inuse(lldb::SBCommand& kmod);
void register_refs(lldb::SBCommand& kmod);
void register_whatis(lldb::SBCommand& kmod);
void register_dmesg(lldb::SBCommand& kmod);
void register_postmortem(lldb::SBCommand& kmod);
void register_quiesce(lldb::SBCommand& kmod);
void register_unload(lldb::SBCommand& kmod);

}  // namespace kq
