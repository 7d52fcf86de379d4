// Progress of a long operation (a benchmark, a report stage), reported to a callback: what is
// being done and how far the current task is. The CLI draws it with ProgressBar
// (flow2/progress_bar.h): a bar on a terminal, one line per event otherwise.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace flow2 {

struct ProgressEvent {
  std::string text;   // one line, e.g. "model 1/2 a.gguf cpu: warm load 3/5"
  int64_t done = 0;   // units of the current task finished
  int64_t total = 0;  // units of the current task; 0 when there is no count
  bool keep = false;  // a message to keep on its own line (a failure), not a step
};

using ProgressCallback = std::function<void(const ProgressEvent&)>;

}  // namespace flow2
