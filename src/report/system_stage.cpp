// The system configuration section's numbers: /proc for the CPU and memory, nvidia-smi (when
// installed) for GPUs, driver and CUDA version, build_info for flow2 itself.
#include <omp.h>
#include <sys/utsname.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "flow2/backend_registry.h"
#include "flow2/build_info.h"
#include "measure/run_command.h"
#include "report/stages.h"

namespace flow2::report {
namespace {

using measure::CommandResult;
using measure::find_on_path;
using measure::run_command;

std::string trim(const std::string& text) {
  const size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t\r\n") - begin + 1);
}

Json cpu_info() {
  Json cpu;
  std::ifstream in("/proc/cpuinfo");
  std::string line, model;
  std::set<std::string> flags;
  int processors = 0;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
    if (key == "processor") ++processors;
    if (key == "model name" && model.empty()) model = value;
    if (key == "flags" && flags.empty()) {
      std::stringstream words(value);
      std::string word;
      while (words >> word) flags.insert(word);
    }
  }
  cpu["model"] = model.empty() ? nullptr : Json(model);
  cpu["logical_cpus"] =
      processors > 0 ? processors : static_cast<int>(std::thread::hardware_concurrency());
  cpu["threads_used"] = omp_get_max_threads();
  Json simd = Json::array();
  for (const char* flag : {"avx2", "f16c", "fma", "avx512f", "avx512_vnni", "avx512bw", "neon"}) {
    if (flags.count(flag)) simd.push_back(flag);
  }
  cpu["simd"] = simd;
  return cpu;
}

Json memory_info() {
  Json memory;
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    for (const char* key : {"MemTotal", "MemAvailable"}) {
      if (line.rfind(std::string(key) + ":", 0) == 0) {
        const std::string name = std::string(key) == "MemTotal" ? "total_bytes" : "available_bytes";
        memory[name] = std::stoll(line.substr(line.find(':') + 1)) * 1024;
      }
    }
  }
  return memory;
}

Json gpu_info() {
  Json gpu;
  gpu["nvidia_smi"] = !find_on_path("nvidia-smi").empty();
  gpu["devices"] = Json::array();
  gpu["driver"] = nullptr;
  gpu["cuda_version"] = nullptr;
  if (!gpu["nvidia_smi"].get<bool>()) return gpu;
  CommandResult query = run_command(
      "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader,nounits "
      "2>/dev/null");
  std::stringstream lines(query.output);
  std::string line;
  while (query.status == 0 && std::getline(lines, line)) {
    std::stringstream fields(line);
    std::string name, driver, memory;
    std::getline(fields, name, ',');
    std::getline(fields, driver, ',');
    std::getline(fields, memory, ',');
    if (trim(name).empty()) continue;
    Json device;
    device["name"] = trim(name);
    try {
      device["memory_bytes"] = std::stoll(trim(memory)) * 1024 * 1024;
    } catch (...) {
      device["memory_bytes"] = nullptr;
    }
    gpu["devices"].push_back(device);
    gpu["driver"] = trim(driver);
  }
  // The header of plain nvidia-smi names the highest CUDA version the driver supports.
  CommandResult header = run_command("nvidia-smi 2>/dev/null");
  const size_t at = header.output.find("CUDA Version:");
  if (at != std::string::npos) {
    std::stringstream rest(header.output.substr(at + 13));
    std::string version;
    rest >> version;
    gpu["cuda_version"] = version;
  }
  return gpu;
}

}  // namespace

Json system_stage() {
  Json system;
  system["status"] = "ok";
  system["cpu"] = cpu_info();
  system["memory"] = memory_info();
  struct utsname names {};
  if (::uname(&names) == 0) {
    system["os"] = std::string(names.sysname) + " " + names.release + " " + names.machine;
  }
  system["gpu"] = gpu_info();
  Json flow2;
  flow2["version"] = version();
  flow2["built_with_cuda"] = built_with_cuda();
  flow2["cuda_devices"] = cuda_device_count();
  Json build;
  for (const auto& [key, value] : build_configuration()) build[key] = value;
  flow2["build"] = build;
  Json backends = Json::array();
  for (const auto& entry : registered_backends()) {
    backends.push_back({{"name", entry.name},
                        {"gpu", entry.is_gpu},
                        {"available", entry.available},
                        {"reason", entry.unavailable_reason}});
  }
  flow2["backends"] = backends;
  system["flow2"] = flow2;
  return system;
}

Json guarded(const std::function<Json()>& body) {
  try {
    return body();
  } catch (const std::exception& error) {
    return Json{{"status", "failed"}, {"error", error.what()}};
  }
}

}  // namespace flow2::report
