// Staged uploads (backend/staged_upload.h) against staging buffers in plain memory whose
// transfers run late, as a device's would: a buffer refilled before its transfer ran would show
// up as wrong bytes at the destination. Also the does-not-fit message of the device memory check.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>

#include "backend/device_memory_check.h"
#include "backend/staged_upload.h"
#include "flow2/error.h"
#include "flow2/mapped_file.h"
#include "test_support.h"

namespace flow2 {
namespace {

// Transfers are queued, and run only when the buffer is waited for or at finish(): the latest a
// device could run them.
class LateBuffers final : public StagingBuffers {
 public:
  LateBuffers(int count, size_t capacity)
      : memory_(count, std::vector<std::byte>(capacity)), pending_(count) {}

  int count() const override { return static_cast<int>(memory_.size()); }
  size_t capacity() const override { return memory_[0].size(); }
  std::byte* data(int buffer) override { return memory_[buffer].data(); }
  void wait_until_free(int buffer) override {
    run(buffer);
    log_.push_back("wait " + std::to_string(buffer));
  }
  void transfer(int buffer, void* destination, size_t bytes) override {
    EXPECT_FALSE(pending_[buffer].has_value()) << "buffer " << buffer << " reused unawaited";
    EXPECT_LE(bytes, capacity());
    pending_[buffer] = Pending{static_cast<std::byte*>(destination), bytes};
    log_.push_back("transfer " + std::to_string(buffer));
    ++transfers_;
  }
  void finish() {
    for (int buffer = 0; buffer < count(); ++buffer) run(buffer);
  }
  const std::vector<std::string>& log() const { return log_; }
  int transfers() const { return transfers_; }

 private:
  struct Pending {
    std::byte* destination;
    size_t bytes;
  };
  void run(int buffer) {
    if (pending_[buffer]) {
      std::memcpy(pending_[buffer]->destination, memory_[buffer].data(), pending_[buffer]->bytes);
      pending_[buffer].reset();
    }
  }

  std::vector<std::vector<std::byte>> memory_;
  std::vector<std::optional<Pending>> pending_;
  std::vector<std::string> log_;
  int transfers_ = 0;
};

std::vector<std::byte> pattern(size_t bytes, uint32_t seed) {
  std::vector<std::byte> out(bytes);
  uint32_t state = seed * 2654435761u + 1;
  for (auto& b : out) {
    state = state * 1664525u + 1013904223u;
    b = static_cast<std::byte>(state >> 24);
  }
  return out;
}

TEST(StagedUpload, CopiesEverySizeThroughFewBuffers) {
  const size_t capacity = 64 << 10;
  for (int buffers : {1, 2, 4}) {
    for (int threads : {1, 3, 8}) {
      LateBuffers staging(buffers, capacity);
      StagedUploader uploader(staging, threads, 1024);
      uint32_t seed = 0;
      for (size_t bytes :
           {size_t{0}, size_t{1}, size_t{4095}, size_t{4096}, size_t{4097}, capacity - 1, capacity,
            capacity + 1, 3 * capacity + 17, 10 * capacity}) {
        const std::vector<std::byte> source = pattern(bytes, ++seed);
        std::vector<std::byte> destination(bytes, std::byte{0xEE});
        uploader.upload(destination.data(), source);
        staging.finish();
        EXPECT_TRUE(destination == source)
            << bytes << " bytes, " << buffers << " buffers, " << threads << " threads";
      }
    }
  }
}

TEST(StagedUpload, ConsecutiveUploadsShareTheBuffersInTurn) {
  // Many small weights back to back, as a model's norms and biases come: no upload waits for
  // its own copies, and each buffer is waited for before it is filled again.
  LateBuffers staging(3, 4096);
  StagedUploader uploader(staging, 2, 512);
  std::vector<std::vector<std::byte>> sources, destinations;
  for (uint32_t i = 0; i < 20; ++i) {
    sources.push_back(pattern(100 + 300 * i, i));
    destinations.emplace_back(sources.back().size());
  }
  for (size_t i = 0; i < sources.size(); ++i) uploader.upload(destinations[i].data(), sources[i]);
  staging.finish();
  for (size_t i = 0; i < sources.size(); ++i) EXPECT_TRUE(destinations[i] == sources[i]) << i;
  // Buffer k of the rotation is waited for right before each of its fills.
  const auto& log = staging.log();
  ASSERT_EQ(log.size(), 2u * static_cast<size_t>(staging.transfers()));
  for (size_t i = 0; i < log.size(); i += 2) {
    const std::string buffer = std::to_string((i / 2) % 3);
    EXPECT_EQ(log[i], "wait " + buffer) << i;
    EXPECT_EQ(log[i + 1], "transfer " + buffer) << i;
  }
}

TEST(StagedUpload, ConvertingFillsSeeWholeGranules) {
  // A fill that writes 4-byte values computed from the element index, as a dtype conversion
  // does; granule 12 (three values) does not divide a page, 512 does.
  for (size_t granule : {size_t{4}, size_t{12}, size_t{512}}) {
    LateBuffers staging(2, 10000);
    StagedUploader uploader(staging, 4, 700);
    const size_t elements = 3 * 512 * 37;
    std::vector<uint32_t> destination(elements);
    std::mutex mutex;
    std::set<size_t> threads_seen;
    bool aligned = true;
    uploader.upload(
        destination.data(), elements * 4, granule, [&](std::byte* out, size_t offset, size_t size) {
          {
            std::lock_guard<std::mutex> lock(mutex);
            threads_seen.insert(std::hash<std::thread::id>{}(std::this_thread::get_id()));
            aligned &=
                offset % granule == 0 && (size % granule == 0 || offset + size == elements * 4);
          }
          // Slow enough that the pool's threads take pieces before the caller
          // has done them all.
          std::this_thread::sleep_for(std::chrono::microseconds(300));
          for (size_t i = 0; i < size / 4; ++i) {
            const auto value = static_cast<uint32_t>(offset / 4 + i) * 7u;
            std::memcpy(out + 4 * i, &value, 4);
          }
        });
    staging.finish();
    EXPECT_TRUE(aligned) << "granule " << granule;
    for (size_t i = 0; i < elements; ++i) {
      ASSERT_EQ(destination[i], static_cast<uint32_t>(i) * 7u) << "granule " << granule;
    }
    EXPECT_GT(threads_seen.size(), 1u) << "pieces of a chunk fill in parallel";
  }
}

TEST(StagedUpload, AFailingFillIsReportedAndTheUploaderGoesOn) {
  LateBuffers staging(2, 4096);
  StagedUploader uploader(staging, 4, 256);
  std::vector<std::byte> destination(20000);
  EXPECT_THROW(uploader.upload(destination.data(), destination.size(), 1,
                               [](std::byte*, size_t offset, size_t) {
                                 if (offset >= 9000) throw Error("bad block");
                               }),
               Error);
  const std::vector<std::byte> source = pattern(destination.size(), 5);
  uploader.upload(destination.data(), source);
  staging.finish();
  EXPECT_TRUE(destination == source);
}

TEST(StagedUpload, AGranuleLargerThanABufferIsAnError) {
  LateBuffers staging(2, 1000);
  StagedUploader uploader(staging, 1);
  std::vector<std::byte> destination(4000);
  EXPECT_THROW(uploader.upload(destination.data(), 4000, 2000, [](std::byte*, size_t, size_t) {}),
               Error);
}

TEST(StagedUpload, PiecesCoverTheChunkOnPageOrGranuleBoundaries) {
  for (size_t bytes :
       {size_t{1}, size_t{4096}, size_t{100000}, size_t{64} << 20, (size_t{64} << 20) - 12}) {
    for (size_t granule : {size_t{1}, size_t{4}, size_t{12}, size_t{512}}) {
      for (int parts : {1, 3, 8, 16}) {
        if (bytes % granule) continue;
        const auto pieces = split_pieces(bytes, granule, parts, size_t{1} << 20);
        ASSERT_FALSE(pieces.empty());
        EXPECT_LE(pieces.size(), static_cast<size_t>(parts));
        const size_t unit = 4096 % granule == 0 && bytes >= 4096 ? 4096 : granule;
        size_t next = 0;
        for (size_t i = 0; i < pieces.size(); ++i) {
          EXPECT_EQ(pieces[i].offset, next);
          EXPECT_GT(pieces[i].size, 0u);
          EXPECT_EQ(pieces[i].offset % unit, 0u) << bytes << " " << granule << " " << parts;
          if (i + 1 < pieces.size()) {
            EXPECT_GE(pieces[i].size, size_t{1} << 20);  // only the last may be small
          }
          next += pieces[i].size;
        }
        EXPECT_EQ(next, bytes);
        if (bytes >= (size_t{16} << 20)) {
          EXPECT_EQ(pieces.size(), static_cast<size_t>(parts));
        }
      }
    }
  }
  EXPECT_TRUE(split_pieces(0, 4, 8, 1024).empty());
}

TEST(StagedUpload, BytesOfAMappedFileAreReadFromTheFile) {
  testing::TempDir directory;
  const std::vector<std::byte> contents = pattern(3 * 4096 + 123, 9);
  testing::write_file(directory / "weights.bin",
                      std::string(reinterpret_cast<const char*>(contents.data()), contents.size()));
  auto file = MappedFile::open(directory / "weights.bin");
  const std::span<const std::byte> mapped = file->bytes();
  const auto inner = MappedFile::locate(mapped.subspan(5000, 7000));
  ASSERT_TRUE(inner.has_value());
  EXPECT_EQ(inner->offset, 5000u);
  EXPECT_FALSE(MappedFile::locate(std::span<const std::byte>(mapped.data() + 5000, 20000)));
  EXPECT_FALSE(MappedFile::locate(contents));  // not a mapping
  for (bool read_files : {true, false}) {
    LateBuffers staging(2, 4096);
    StagedUploader uploader(staging, 3, 1024);
    std::vector<std::byte> destination(7000);
    uploader.upload(destination.data(), destination.size(), 1,
                    copy_fill(mapped.subspan(5000, 7000), {.read_files = read_files}));
    staging.finish();
    EXPECT_TRUE(std::equal(destination.begin(), destination.end(), contents.begin() + 5000))
        << "read_files " << read_files;
  }
}

TEST(TaskPool, RunsEveryTaskOnceAndRethrows) {
  TaskPool pool(4);
  EXPECT_EQ(pool.threads(), 4);
  for (size_t count : {size_t{0}, size_t{1}, size_t{3}, size_t{100}}) {
    std::vector<std::atomic<int>> runs(count);
    pool.run(count, [&](size_t i) { runs[i].fetch_add(1); });
    for (size_t i = 0; i < count; ++i) EXPECT_EQ(runs[i].load(), 1) << i;
  }
  std::atomic<int> finished{0};
  EXPECT_THROW(pool.run(50,
                        [&](size_t i) {
                          if (i == 7) throw std::runtime_error("task 7");
                          finished.fetch_add(1);
                        }),
               std::runtime_error);
  EXPECT_EQ(finished.load(), 49);  // the others still ran
  std::atomic<size_t> sum{0};
  pool.run(10, [&](size_t i) { sum.fetch_add(i); });
  EXPECT_EQ(sum.load(), 45u);
}

TEST(DeviceMemoryCheck, SaysWhatTheWeightsNeedAndWhatIsFree) {
  DeviceMemory memory{"NVIDIA H100 80GB HBM3 (cuda:0)", 10'000'000'000, 85'000'000'000};
  EXPECT_NO_THROW(check_weights_fit(10'000'000'000, memory));
  EXPECT_NO_THROW(check_weights_fit(0, memory));
  try {
    check_weights_fit(16'060'000'000, memory);
    FAIL() << "16 GB of weights fit into 10 GB";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("does not fit"), std::string::npos) << message;
    EXPECT_NE(message.find("16.06 GB"), std::string::npos) << message;
    EXPECT_NE(message.find("16060000000 bytes"), std::string::npos) << message;
    EXPECT_NE(message.find("NVIDIA H100 80GB HBM3 (cuda:0) has 10.00 GB free of 85.00 GB"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("--device cpu"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace flow2
