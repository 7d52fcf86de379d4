#include "generation_flags.h"

#include <sys/resource.h>

namespace flow2::cli {

void add_generation_flags(CLI::App& command, GenerationFlags& flags) {
  SamplingOptions& s = flags.sampling;
  command.add_option("--max-tokens,-n", flags.max_tokens, "New tokens at most")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  command.add_option("--temp", s.temperature, "Sampling temperature; 0 is greedy")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  command.add_option("--top-k", s.top_k, "Keep the k most likely tokens (0: off)")
      ->check(CLI::NonNegativeNumber);
  command.add_option("--top-p", s.top_p, "Keep the smallest set with this probability mass")
      ->check(CLI::Range(0.0f, 1.0f));
  command.add_option("--min-p", s.min_p, "Drop tokens below min-p times the top probability")
      ->check(CLI::Range(0.0f, 1.0f));
  command
      .add_option("--repeat-penalty", s.repetition_penalty,
                  "Repetition penalty (1: off), as transformers applies it")
      ->check(CLI::PositiveNumber);
  command.add_option("--presence-penalty", s.presence_penalty, "Presence penalty (0: off)");
  command.add_option("--frequency-penalty", s.frequency_penalty, "Frequency penalty (0: off)");
  command
      .add_option("--penalty-window", s.penalty_window,
                  "How many recent tokens the penalties consider")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  command.add_option("--seed", s.seed, "Random seed for sampling")->capture_default_str();
  command.add_option("--stop", flags.stop_strings, "Stop when this text appears (repeatable)");
  command.add_flag("--ignore-eos", flags.ignore_eos, "Do not stop at end-of-sequence tokens");
}

GenerationOptions generation_options(const GenerationFlags& flags, const ModelConfig& config,
                                     const Tokenizer* tokenizer,
                                     const TokenizerConfig& tokenizer_config) {
  GenerationOptions options;
  options.max_new_tokens = flags.max_tokens;
  options.sampling = flags.sampling;
  if (!flags.ignore_eos) {
    options.stop_ids = config.eos_token_ids;
    // The tokenizer's end-of-turn token (<|eot_id|>, <|im_end|>) ends a reply too.
    if (tokenizer && !tokenizer_config.eos_token.empty()) {
      if (auto id = tokenizer->token_to_id(tokenizer_config.eos_token)) {
        options.stop_ids.push_back(*id);
      }
    }
  }
  return options;
}

TextStream::TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings,
                       std::FILE* out)
    : decoder_(tokenizer, true), stops_(std::move(stop_strings)), out_(out) {
  std::erase(stops_, std::string());
}

void TextStream::emit(size_t end) {
  if (out_ && end > printed_) {
    std::fwrite(text_.data() + printed_, 1, end - printed_, out_);
    std::fflush(out_);
  }
  printed_ = std::max(printed_, end);
}

bool TextStream::push(int32_t id) {
  if (stopped_) return false;
  text_ += decoder_.push(id);
  // A stop string ends the text where it begins.
  size_t earliest = std::string::npos;
  for (const auto& stop : stops_) {
    size_t from = printed_ > stop.size() ? printed_ - stop.size() : 0;
    earliest = std::min(earliest, text_.find(stop, from));
  }
  if (earliest != std::string::npos) {
    text_.resize(earliest);
    emit(earliest);
    stopped_ = true;
    return false;
  }
  // Hold back a tail that could still grow into a stop string.
  size_t hold = 0;
  for (const auto& stop : stops_) {
    for (size_t length = std::min(stop.size() - 1, text_.size()); length > hold; --length) {
      if (text_.compare(text_.size() - length, length, stop, 0, length) == 0) {
        hold = length;
        break;
      }
    }
  }
  emit(text_.size() - hold);
  return true;
}

void TextStream::finish() {
  if (!stopped_) text_ += decoder_.finish();
  emit(text_.size());
}

int64_t peak_rss_bytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

}  // namespace flow2::cli
