// Every way a safetensors file can be malformed gives an error that names the file and the fault.
#include <gtest/gtest.h>

#include "flow2/error.h"
#include "flow2/safetensors.h"
#include "test_support.h"

namespace flow2 {
namespace {

using testing::TempDir;

std::string little_endian_u64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return bytes;
}

// A file made of a length prefix, `header` and `data_bytes` zero bytes.
std::string safetensors_bytes(const std::string& header, size_t data_bytes) {
  return little_endian_u64(header.size()) + header + std::string(data_bytes, '\0');
}

// Writes `contents` to a file, opens it and returns the error message (or "" if it opened).
std::string open_error(const std::string& contents) {
  TempDir dir;
  auto path = dir / "broken.safetensors";
  testing::write_file(path, contents);
  try {
    SafetensorsFile::open(path);
  } catch (const Error& error) {
    std::string message = error.what();
    EXPECT_NE(message.find(path.string()), std::string::npos)
        << "error does not name the file: " << message;
    return message;
  }
  return "";
}

void expect_error(const std::string& contents, const std::string& fragment) {
  std::string message = open_error(contents);
  EXPECT_NE(message.find(fragment), std::string::npos)
      << "expected an error containing '" << fragment << "', got '" << message << "'";
}

TEST(SafetensorsErrors, FileShorterThanTheLengthPrefix) {
  expect_error("", "too short");
  expect_error("abc", "too short");
}

TEST(SafetensorsErrors, HeaderLengthPastTheEnd) {
  expect_error(little_endian_u64(1000) + "{}", "runs past the end of the file");
  expect_error(little_endian_u64(~0ull) + "{}", "runs past the end of the file");
}

TEST(SafetensorsErrors, HeaderIsNotJson) {
  expect_error(safetensors_bytes("{\"a\": ", 0), "not valid JSON");
  expect_error(safetensors_bytes("[1, 2]", 0), "does not start with '{'");
  expect_error(safetensors_bytes("{\"a\": 1}", 0), "not an object");
}

TEST(SafetensorsErrors, UnknownDtype) {
  expect_error(
      safetensors_bytes(R"({"w": {"dtype": "F17", "shape": [1], "data_offsets": [0, 4]}})", 4),
      "unknown dtype 'F17'");
}

TEST(SafetensorsErrors, MissingOrMalformedFields) {
  expect_error(safetensors_bytes(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4),
               "missing 'dtype'");
  expect_error(safetensors_bytes(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4),
               "missing 'shape'");
  expect_error(
      safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4),
      "non-negative integers");
  expect_error(
      safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4),
      "'data_offsets' must be [begin, end]");
  expect_error(
      safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 4),
      "end before they begin");
  expect_error(safetensors_bytes(R"({"__metadata__": {"format": 1}})", 0), "not a string");
}

TEST(SafetensorsErrors, SizeDoesNotMatchShape) {
  expect_error(
      safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", 20),
      "needs 24 bytes");
  // A shape whose byte count overflows 64 bits.
  expect_error(
      safetensors_bytes(
          R"({"w": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})",
          8),
      "too large");
}

TEST(SafetensorsErrors, OffsetsOutOfRange) {
  expect_error(
      safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8),
      "run past the end of the data");
}

TEST(SafetensorsErrors, OverlappingTensors) {
  expect_error(safetensors_bytes(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                     "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                                 12),
               "overlaps");
}

TEST(SafetensorsErrors, HolesInTheData) {
  expect_error(safetensors_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                     "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
                                 12),
               "belong to no tensor");
  expect_error(
      safetensors_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 12),
      "last 8 bytes");
}

TEST(SafetensorsErrors, DuplicateTensorNames) {
  expect_error(safetensors_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                     "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                                 8),
               "appears twice");
}

TEST(SafetensorsErrors, TruncatedCheckpoint) {
  std::string good = testing::read_file(testing::model_path("tiny-llama/model.safetensors"));
  expect_error(good.substr(0, good.size() - 100), "run past the end of the data");
  expect_error(good.substr(0, 2000), "runs past the end of the file");
}

TEST(SafetensorsErrors, MissingFileAndDirectory) {
  TempDir dir;
  EXPECT_THROW(SafetensorsFile::open(dir / "absent.safetensors"), Error);
  EXPECT_THROW(SafetensorsFile::open(dir.path()), Error);
}

}  // namespace
}  // namespace flow2
