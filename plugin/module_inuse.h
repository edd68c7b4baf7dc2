// The in-use analysis of one module on the session's kernel, and its text
// and JSON (schema kquiesce.inuse/1, docs/json.md).
#pragma once
#include <functional>
#include <string>

#include <lldb/API/LLDB.h>

#include "inuse/report.h"
#include "plugin/session.h"

namespace kq {

// Every task's stack, every subsystem provider and (with `scan`) the raw
// memory reference scan, classified into one report. `say`: progress.
Report inuse_report(Session& s, lldb::SBTarget& target, const Module& module, bool scan,
                    const std::function<void(const std::string&)>& say);

void render_inuse_json(const Report& r, std::string& out);
void render_inuse_text(const Report& r, std::string& out);

}  // namespace kq
