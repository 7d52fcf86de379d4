// Evicting a model's files from the page cache before a cold load, and checking that it worked.
#pragma once

#include <filesystem>
#include <vector>

#include "flow2/benchmark.h"

namespace flow2::measure {

// The files a model path stands for: the file itself, or every regular file of a directory.
std::vector<std::filesystem::path> model_files(const std::filesystem::path& path);

// Bytes of `file` in the page cache (mincore over a fresh mapping).
int64_t resident_bytes(const std::filesystem::path& file);

// posix_fadvise(POSIX_FADV_DONTNEED) on every file; pages still mapped elsewhere or dirty stay.
PageCacheDrop drop_from_page_cache(const std::vector<std::filesystem::path>& files);

}  // namespace flow2::measure
