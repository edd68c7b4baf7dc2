// The Linux subsystem providers that survey.cpp runs, one file each.
#pragma once
#include "kernel/linux/survey.h"

namespace kq {

void survey_wait_queues(const SurveyContext& ctx, Survey& out);  // waitqueue.cpp
void survey_locks(const SurveyContext& ctx, Survey& out);        // lock.cpp
void survey_timers(const SurveyContext& ctx, Survey& out);       // timer.cpp
void survey_hrtimers(const SurveyContext& ctx, Survey& out);     // hrtimer.cpp
void survey_workqueues(const SurveyContext& ctx, Survey& out);   // workqueue.cpp
void survey_notifiers(const SurveyContext& ctx, Survey& out);    // notifier.cpp
void survey_open_files(const SurveyContext& ctx, Survey& out);   // file.cpp

}  // namespace kq
