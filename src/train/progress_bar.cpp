#include "flow2/progress_bar.h"

#include <fmt/format.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cmath>

#include "flow2/error.h"

namespace flow2 {

ProgressStyle parse_progress_style(std::string_view mode, bool is_terminal) {
  if (mode == "auto") return is_terminal ? ProgressStyle::Bar : ProgressStyle::Lines;
  if (mode == "bar") return ProgressStyle::Bar;
  if (mode == "lines") return ProgressStyle::Lines;
  if (mode == "off") return ProgressStyle::Off;
  fail("unknown progress mode '{}' (auto, bar, lines, off)", mode);
}

std::string format_duration(double seconds) {
  auto total = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  int64_t hours = total / 3600, minutes = total / 60 % 60, rest = total % 60;
  if (hours > 0) return fmt::format("{}:{:02}:{:02}", hours, minutes, rest);
  return fmt::format("{}:{:02}", minutes, rest);
}

std::string ProgressBar::status(const StepRecord& record) const {
  const int64_t done = record.step - record.first_step;
  const double rate = record.elapsed_s > 0 ? static_cast<double>(tokens_) / record.elapsed_s : 0;
  const double eta = done > 0 ? record.elapsed_s / static_cast<double>(done) *
                                    static_cast<double>(record.total_steps - record.step)
                              : 0;
  return fmt::format("{}/{}  loss {:.4f}  lr {:.2e}  grad {:.3f}  {:.0f} tok/s  ETA {}",
                     record.step, record.total_steps, record.loss, record.learning_rate,
                     record.grad_norm, rate, format_duration(eta));
}

void ProgressBar::step(const StepRecord& record) {
  tokens_ += record.tokens;
  if (style_ == ProgressStyle::Off) return;
  if (style_ == ProgressStyle::Lines) {
    // About a hundred lines for a long run, every step of a short one, and always the last.
    int64_t every = std::max<int64_t>(1, record.total_steps / 100);
    if (record.step % every == 0 || record.step == record.total_steps) {
      fmt::print(out_, "step {}\n", status(record));
      std::fflush(out_);
    }
    return;
  }
  draw(record.step, record.total_steps, status(record));
}

void ProgressBar::draw(int64_t done, int64_t total, const std::string& text) {
  constexpr int64_t kWidth = 24;
  std::string line = text;
  if (total > 0) {
    const int64_t filled = kWidth * std::clamp<int64_t>(done, 0, total) / total;
    line = fmt::format("[{}{}] {}", std::string(static_cast<size_t>(filled), '#'),
                       std::string(static_cast<size_t>(kWidth - filled), '.'), text);
  }
  // A line wider than the terminal would wrap, and "\r" would then redraw only its last part.
  winsize size{};
  if (::ioctl(fileno(out_), TIOCGWINSZ, &size) == 0 && size.ws_col > 1 &&
      line.size() >= size.ws_col) {
    size_t cut = size.ws_col - 1;
    while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;  // UTF-8
    line.resize(cut);
  }
  fmt::print(out_, "\r{}\x1b[K", line);
  std::fflush(out_);
  drawn_ = true;
}

void ProgressBar::update(const ProgressEvent& event, std::string_view prefix) {
  if (style_ == ProgressStyle::Off) return;
  const std::string text = std::string(prefix) + event.text;
  if (style_ == ProgressStyle::Lines || event.keep) {
    if (drawn_) fmt::print(out_, "\n");
    drawn_ = false;
    fmt::print(out_, "{}\n", text);
    std::fflush(out_);
    return;
  }
  draw(event.done, event.total, text);
  if (event.total > 0 && event.done >= event.total) finish();
}

void ProgressBar::eval(int64_t step, const EvalResult& result) {
  if (style_ == ProgressStyle::Off) return;
  if (drawn_) fmt::print(out_, "\n");
  drawn_ = false;
  fmt::print(out_, "step {}  val_loss {:.4f}  val_perplexity {:.3f}\n", step, result.loss,
             result.perplexity);
  std::fflush(out_);
}

void ProgressBar::finish() {
  if (drawn_) fmt::print(out_, "\n");
  drawn_ = false;
  std::fflush(out_);
}

}  // namespace flow2
