// Training progress on stderr: a bar redrawn in place when stderr is a terminal (or when asked),
// plain lines otherwise, so that logs captured to files stay readable.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "flow2/training.h"

namespace flow2 {

enum class ProgressStyle { Bar, Lines, Off };

// "auto" (a bar on a terminal, lines otherwise), "bar", "lines", "off".
ProgressStyle parse_progress_style(std::string_view mode, bool is_terminal);

// "1:02:03" or "2:03".
std::string format_duration(double seconds);

class ProgressBar {
 public:
  ProgressBar(std::FILE* out, ProgressStyle style) : out_(out), style_(style) {}
  void step(const StepRecord& record);
  void eval(int64_t step, const EvalResult& result);
  void finish();

 private:
  std::string status(const StepRecord& record) const;

  std::FILE* out_;
  ProgressStyle style_;
  int64_t tokens_ = 0;
  bool drawn_ = false;  // a bar is on the current line
};

}  // namespace flow2
