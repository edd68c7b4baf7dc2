// Entry point of the LLDB plugin: `plugin load libkquiesce.so` adds `kmod`.
#include <cstdio>

#include "plugin/commands.h"
#include "vmcore/memory_source.h"

namespace kq {
namespace {

class Command : public lldb::SBCommandPluginInterface {
public:
    explicit Command(CommandSpec spec) : spec_(std::move(spec)) {}

    bool DoExecute(lldb::SBDebugger dbg, char** argv, lldb::SBCommandReturnObject& result) override {
        try {
            Args args = parse_args(argv, spec_.flags, spec_.with_value);
            if (args.flag("--help")) {
                result.Printf("%s\n\nUsage: %s\n", spec_.help, spec_.usage);
                result.SetStatus(lldb::eReturnStatusSuccessFinishResult);
                return true;
            }
            std::string out;
            spec_.body(dbg, args, out);
            result.PutCString(out.c_str());
            result.SetStatus(lldb::eReturnStatusSuccessFinishResult);
            return true;
        } catch (const std::exception& e) {
            // Nothing escapes into LLDB: every failure is one error line.
            result.SetError((std::string("kmod ") + spec_.name + ": " + e.what()).c_str());
            result.SetStatus(lldb::eReturnStatusFailed);
            return false;
        }
    }

private:
    CommandSpec spec_;
};

}  // namespace

void add_command(lldb::SBCommand& kmod, const CommandSpec& spec) {
    CommandSpec s = spec;
    s.flags.insert("--help");
    lldb::SBCommand cmd = kmod.AddCommand(spec.name, new Command(std::move(s)), spec.help, spec.usage);
    cmd.SetHelpLong(spec.usage);
}

void progress(lldb::SBDebugger& dbg, const std::string& line) {
    if (FILE* f = dbg.GetErrorFileHandle()) {
        fprintf(f, "kquiesce: %s\n", line.c_str());
        fflush(f);
    }
}

}  // namespace kq

namespace lldb {
bool PluginInitialize(lldb::SBDebugger dbg);
}

bool lldb::PluginInitialize(lldb::SBDebugger dbg) {
    lldb::SBCommandInterpreter ci = dbg.GetCommandInterpreter();
    lldb::SBCommand kmod = ci.AddMultiwordCommand(
        "kmod", "kquiesce: what still uses a kernel module, and can it be unloaded safely. "
                "Start with 'target create VMLINUX' then 'kmod core VMCORE' (a dump) or 'kmod attach HOST:PORT' "
                "(a running kernel's GDB stub).");
    if (!kmod.IsValid()) return false;
    kq::register_core(kmod);
    kq::register_attach(kmod);
    kq::register_list(kmod);
    kq::register_threads(kmod);
    kq::register_bt(kmod);
    kq::register_inuse(kmod);
    kq::register_refs(kmod);
    kq::register_whatis(kmod);
    kq::register_dmesg(kmod);
    kq::register_postmortem(kmod);
    kq::register_quiesce(kmod);
    kq::register_unload(kmod);
    return true;
}
