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
// memory reference scan of the loaded module `module`, classified into one
// report. Through /proc/kcore, a report with gaps other than the scan's (the
// kernel changed while read) is made again from a fresh read, up to three
// times: earlier references to its modules do not survive (`module` is a copy).
// `say`: progress.
Report inuse_report(Session& s, lldb::SBTarget& target, std::string module, bool scan,
                    const std::function<void(const std::string&)>& say);

void render_inuse_json(const Report& r, std::string& out);
void render_inuse_text(const Report& r, std::string& out);

}  // namespace kq
