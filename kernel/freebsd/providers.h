// The FreeBSD subsystem providers that survey.cpp runs, one file each.
#pragma once
#include "kernel/freebsd/survey.h"

namespace kq::fbsd {

void survey_thread_list(const FreebsdSurveyContext& ctx, Survey& out);     // survey.cpp
void survey_linker_files(const FreebsdSurveyContext& ctx, Survey& out);    // survey.cpp
void survey_sleep_channels(const FreebsdSurveyContext& ctx, Survey& out);  // sleepqueue.cpp
void survey_locks(const FreebsdSurveyContext& ctx, Survey& out);           // lock.cpp
void survey_callouts(const FreebsdSurveyContext& ctx, Survey& out);        // callout.cpp
void survey_taskqueues(const FreebsdSurveyContext& ctx, Survey& out);      // taskqueue.cpp
void survey_eventhandlers(const FreebsdSurveyContext& ctx, Survey& out);   // eventhandler.cpp

// "task 100008 (kq_fbsd_sleep)" for the thread whose struct thread is at
// `td`, or the address when it is not among ctx.threads.
std::string thread_label(const FreebsdSurveyContext& ctx, uint64_t td);
// Its tid, or nullopt.
std::optional<int64_t> thread_id(const FreebsdSurveyContext& ctx, uint64_t td);

}  // namespace kq::fbsd
