#include "train_log.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "flow2/atomic_file.h"
#include "flow2/error.h"

namespace flow2 {

TrainLog::TrainLog(std::filesystem::path path, std::optional<int64_t> resume_step)
    : path_(std::move(path)) {
  std::string kept;
  if (resume_step && std::filesystem::exists(path_)) {
    std::ifstream in(path_);
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json row = nlohmann::json::parse(line, nullptr, false);
      if (row.is_discarded() || !row.contains("step")) continue;  // a torn last line
      if (row["step"].get<int64_t>() <= *resume_step) kept += line + "\n";
    }
  }
  write_file_atomically(path_, kept);
  file_ = std::fopen(path_.c_str(), "a");
  check(file_ != nullptr, "cannot open {}: {}", path_.string(), std::strerror(errno));
}

TrainLog::~TrainLog() {
  if (file_) std::fclose(file_);
}

void TrainLog::write(const nlohmann::ordered_json& row) {
  std::string line = row.dump() + "\n";
  bool ok = std::fwrite(line.data(), 1, line.size(), file_) == line.size();
  check(ok && std::fflush(file_) == 0, "cannot write {}: {}", path_.string(), std::strerror(errno));
}

}  // namespace flow2
