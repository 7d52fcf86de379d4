// Learning-rate schedules with linear warmup, as transformers' get_constant_schedule_with_warmup,
// get_linear_schedule_with_warmup and get_cosine_schedule_with_warmup (num_cycles 0.5). The
// factor multiplies the base learning rate; optimizer step s (0-based: steps taken before it)
// uses factor(s), as a LambdaLR stepped after each optimizer step does:
//   warmup (s < W):  s / max(1, W)
//   constant:        1
//   linear:          max(0, (N - s) / max(1, N - W))
//   cosine:          max(0, 0.5 * (1 + cos(pi * (s - W) / max(1, N - W))))
// with W warmup steps and N total steps.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace flow2 {

enum class LrSchedule { Constant, Linear, Cosine };

// "constant", "linear", "cosine"; anything else is an error naming the accepted ones.
LrSchedule parse_lr_schedule(std::string_view name);
std::string_view lr_schedule_name(LrSchedule schedule);

double lr_factor(LrSchedule schedule, int64_t step, int64_t warmup_steps, int64_t total_steps);

}  // namespace flow2
