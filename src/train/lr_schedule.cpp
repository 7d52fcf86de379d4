#include "flow2/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "flow2/error.h"

namespace flow2 {

LrSchedule parse_lr_schedule(std::string_view name) {
  if (name == "constant") return LrSchedule::Constant;
  if (name == "linear") return LrSchedule::Linear;
  if (name == "cosine") return LrSchedule::Cosine;
  fail("unknown learning-rate schedule '{}' (constant, linear, cosine)", name);
}

std::string_view lr_schedule_name(LrSchedule schedule) {
  switch (schedule) {
    case LrSchedule::Constant:
      return "constant";
    case LrSchedule::Linear:
      return "linear";
    case LrSchedule::Cosine:
      return "cosine";
  }
  return "constant";
}

double lr_factor(LrSchedule schedule, int64_t step, int64_t warmup_steps, int64_t total_steps) {
  const double s = static_cast<double>(step);
  if (step < warmup_steps) return s / static_cast<double>(std::max<int64_t>(1, warmup_steps));
  const double decay_steps = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  switch (schedule) {
    case LrSchedule::Constant:
      return 1.0;
    case LrSchedule::Linear:
      return std::max(0.0, static_cast<double>(total_steps - step) / decay_steps);
    case LrSchedule::Cosine: {
      double progress = static_cast<double>(step - warmup_steps) / decay_steps;
      return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
    }
  }
  return 1.0;
}

}  // namespace flow2
