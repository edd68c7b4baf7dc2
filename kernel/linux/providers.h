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
void survey_tasklets(const SurveyContext& ctx, Survey& out);     // tasklet.cpp
void survey_irq_work(const SurveyContext& ctx, Survey& out);     // irq_work.cpp
void survey_rcu(const SurveyContext& ctx, Survey& out);          // rcu.cpp
void survey_irqs(const SurveyContext& ctx, Survey& out);         // irq.cpp
void survey_devices(const SurveyContext& ctx, Survey& out);      // device.cpp

}  // namespace kq
