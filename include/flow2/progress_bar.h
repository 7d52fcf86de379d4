// Progress on stderr for training, benchmarks and reports: a bar redrawn in place when stderr is
// a terminal (or when asked), plain lines otherwise, so that logs captured to files stay readable
// and parseable.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "flow2/progress.h"
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
  ~ProgressBar() { finish(); }  // an error message after a bar starts on a line of its own
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  // Training: one optimizer step; lines are thinned to about a hundred per run.
  void step(const StepRecord& record);
  void eval(int64_t step, const EvalResult& result);
  // Any long task: Lines prints `prefix` + the event's text as one line per event; Bar redraws
  // "[####....] prefix text" in place, and ends the line when the task is done (done == total)
  // or the event is to be kept.
  void update(const ProgressEvent& event, std::string_view prefix = "");
  void finish();

 private:
  std::string status(const StepRecord& record) const;
  // "\r[####....] text", cut to the terminal's width.
  void draw(int64_t done, int64_t total, const std::string& text);

  std::FILE* out_;
  ProgressStyle style_;
  int64_t tokens_ = 0;
  bool drawn_ = false;  // a bar is on the current line
};

}  // namespace flow2
