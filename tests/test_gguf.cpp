// GGUF reading and writing: a file written by gguf-py (tests/data/gguf, made by
// tests/generators/gen_gguf_fixture.py) read back value by value, read -> write -> read round
// trips, and every kind of corruption rejected with a clear error.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "flow2/error.h"
#include "flow2/gguf.h"
#include "test_support.h"

namespace flow2 {
namespace {

using nlohmann::json;

json to_json(const GgufValue& value, const std::string& key) {
  switch (value.type) {
    case GgufType::U8:
    case GgufType::U16:
    case GgufType::U32:
    case GgufType::U64:
      return value.as_uint(key);
    case GgufType::I8:
    case GgufType::I16:
    case GgufType::I32:
    case GgufType::I64:
      return value.as_int(key);
    case GgufType::F32:
    case GgufType::F64:
      return value.as_float(key);
    case GgufType::BOOL:
      return value.as_bool(key);
    case GgufType::STRING:
      return value.as_string(key);
    case GgufType::ARRAY: {
      json items = json::array();
      for (const auto& item : value.as_array(key).items) items.push_back(to_json(item, key));
      return items;
    }
  }
  return nullptr;
}

std::filesystem::path fixture() {
  return testing::data_path("gguf/metadata_types.gguf");
}

TEST(Gguf, ReadsWhatGgufPyWrote) {
  auto file = GgufFile::open(fixture());
  json expected = json::parse(testing::read_file(testing::data_path("gguf/metadata_types.json")));
  EXPECT_EQ(file.version(), 3u);
  for (const auto& [key, value] : expected["metadata"].items()) {
    const GgufValue* actual = file.find(key);
    ASSERT_NE(actual, nullptr) << key;
    EXPECT_EQ(to_json(*actual, key), value) << key;
  }
  EXPECT_EQ(file.find("test.u8")->type, GgufType::U8);
  EXPECT_EQ(file.find("test.nested")->as_array("n").element_type, GgufType::ARRAY);
  ASSERT_EQ(file.tensors().size(), expected["tensors"].size());
  for (const auto& tensor : file.tensors()) {
    const json& want = expected["tensors"][tensor.name];
    EXPECT_EQ(dtype_name(tensor.dtype), want["type"].get<std::string>()) << tensor.name;
    EXPECT_EQ(tensor.shape, want["shape"].get<Shape>()) << tensor.name;
    auto values = tensor.to_f32();
    auto expected_values = want["values"].get<std::vector<float>>();
    ASSERT_EQ(values.size(), expected_values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      ASSERT_NEAR(values[i], expected_values[i], 1e-6 * (1 + std::abs(expected_values[i])))
          << tensor.name << " " << i;
    }
  }
}

TEST(Gguf, ReadWriteReadIsIdentical) {
  testing::TempDir dir;
  auto original = GgufFile::open(fixture());
  write_gguf(dir / "copy.gguf", original.metadata(), original.tensors(), original.alignment());
  auto copy = GgufFile::open(dir / "copy.gguf");
  ASSERT_EQ(copy.metadata().size(), original.metadata().size());
  for (size_t i = 0; i < copy.metadata().size(); ++i) {
    const auto& [key, value] = original.metadata()[i];
    EXPECT_EQ(copy.metadata()[i].first, key);
    EXPECT_EQ(copy.metadata()[i].second.type, value.type) << key;
    EXPECT_EQ(to_json(copy.metadata()[i].second, key), to_json(value, key)) << key;
  }
  ASSERT_EQ(copy.tensors().size(), original.tensors().size());
  for (size_t i = 0; i < copy.tensors().size(); ++i) {
    const auto &a = original.tensors()[i], &b = copy.tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.dtype, b.dtype);
    EXPECT_EQ(a.shape, b.shape);
    ASSERT_EQ(a.bytes.size(), b.bytes.size());
    EXPECT_EQ(std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()), 0) << a.name;
  }
  // The layout is the one gguf-py produced: the files are byte for byte the same.
  EXPECT_EQ(testing::read_file(dir / "copy.gguf"), testing::read_file(fixture()));
}

std::string parse_error(const std::string& bytes) {
  try {
    GgufFile::parse(std::as_bytes(std::span(bytes)), "broken.gguf");
  } catch (const Error& error) {
    std::string message = error.what();
    EXPECT_NE(message.find("broken.gguf"), std::string::npos) << message;
    return message;
  }
  return "(no error)";
}

void expect_error(const std::string& bytes, const std::string& fragment) {
  std::string message = parse_error(bytes);
  EXPECT_NE(message.find(fragment), std::string::npos)
      << "expected '" << fragment << "' in: " << message;
}

// Byte offset of `needle` in `haystack` (the fixture's keys and names are unique strings).
size_t offset_of(const std::string& haystack, const std::string& needle) {
  size_t at = haystack.find(needle);
  EXPECT_NE(at, std::string::npos) << needle;
  return at;
}

template <typename T>
void poke(std::string& bytes, size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

TEST(GgufErrors, HeaderProblems) {
  const std::string good = testing::read_file(fixture());
  std::string bad = good;
  bad[0] = 'X';
  expect_error(bad, "bad magic");
  bad = good;
  poke<uint32_t>(bad, 4, 1);
  expect_error(bad, "version 1 is not supported");
  bad = good;
  poke<uint64_t>(bad, 8, uint64_t{1} << 40);
  expect_error(bad, "tensor count");
  bad = good;
  poke<uint64_t>(bad, 16, uint64_t{1} << 40);
  expect_error(bad, "metadata count");
  expect_error(good.substr(0, 6), "truncated");
}

TEST(GgufErrors, MetadataProblems) {
  const std::string good = testing::read_file(fixture());
  for (size_t cut : {size_t{30}, size_t{200}, size_t{600}, size_t{1000}}) {
    // Either the counts no longer fit what is left, or a read runs out of bytes.
    std::string message = parse_error(good.substr(0, cut));
    EXPECT_TRUE(message.find("truncated") != std::string::npos ||
                message.find("runs past the end") != std::string::npos)
        << cut << ": " << message;
  }
  std::string bad = good;
  // The u32 type that follows the key "test.bool", then its value byte.
  size_t bool_type = offset_of(good, "test.bool") + 9;
  poke<uint8_t>(bad, bool_type + 4, 7);
  expect_error(bad, "bool value 7");
  bad = good;
  poke<uint32_t>(bad, bool_type, 99);
  expect_error(bad, "unknown value type 99");
  bad = good;
  size_t strings_type = offset_of(good, "test.strings") + 12;
  poke<uint64_t>(bad, strings_type + 8, uint64_t{1} << 60);  // element count
  expect_error(bad, "runs past the end");
}

TEST(GgufErrors, TensorProblems) {
  const std::string good = testing::read_file(fixture());
  // Tensor info "q8_0": name, n_dims (u32), 2 x u64 dims, type (u32), offset (u64).
  size_t info = offset_of(good, "q8_0") + 4;
  std::string bad = good;
  poke<uint32_t>(bad, info + 4 + 16, 77);
  expect_error(bad, "unsupported ggml type 77");
  bad = good;
  poke<uint64_t>(bad, info + 4 + 16 + 4, 3);
  expect_error(bad, "is not aligned");
  bad = good;
  poke<uint64_t>(bad, info + 4 + 16 + 4, uint64_t{1} << 32);
  expect_error(bad, "runs past the end of the file");
  bad = good;
  poke<uint64_t>(bad, info + 4 + 16 + 4, 0);  // the same offset as the first tensor
  expect_error(bad, "overlap");
  bad = good;
  poke<uint32_t>(bad, info, 9);  // dimensions
  expect_error(bad, "9 dimensions");
  bad = good;
  poke<uint64_t>(bad, info + 4, 33);  // a row that is not whole Q8_0 blocks
  expect_error(bad, "not whole Q8_0 blocks");
  expect_error(good.substr(0, good.size() - 10), "runs past the end of the file");
}

}  // namespace
}  // namespace flow2
