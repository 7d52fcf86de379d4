// Reading the fixture checkpoints and round trips through the writer.
#include <gtest/gtest.h>

#include <cstring>

#include "flow2/error.h"
#include "flow2/safetensors.h"
#include "test_support.h"

namespace flow2 {
namespace {

using testing::TempDir;

TEST(Safetensors, ReadsAFixtureCheckpoint) {
  auto file = SafetensorsFile::open(testing::model_path("tiny-llama/model.safetensors"));
  EXPECT_EQ(file.metadata().at("format"), "pt");
  const HostTensor& embed = file.get("model.embed_tokens.weight");
  EXPECT_EQ(embed.dtype, DType::F32);
  EXPECT_EQ(embed.shape, (Shape{320, 64}));
  EXPECT_EQ(embed.bytes.size(), 320u * 64u * 4u);
  // 3 layers x 9 tensors + embeddings, final norm and lm_head.
  EXPECT_EQ(file.tensors().size(), 30u);
  EXPECT_EQ(file.find("no.such.tensor"), nullptr);
  EXPECT_THROW(file.get("no.such.tensor"), Error);
}

TEST(Safetensors, IntegerTensorsReadByValue) {
  auto file = SafetensorsFile::open(testing::model_path("tiny-llama/reference.safetensors"));
  const HostTensor& ids = file.get("input_ids");
  EXPECT_EQ(ids.dtype, DType::I64);
  EXPECT_EQ(ids.shape, (Shape{2, 24}));
  for (int64_t id : ids.to_i64()) {
    EXPECT_GE(id, 4);  // the generator draws ids from [4, 320)
    EXPECT_LT(id, 320);
  }
}

TEST(Safetensors, ViewsHoldTheFileBytesAtTheirOffsets) {
  auto path = testing::model_path("tiny-smol/model.safetensors");
  auto file = SafetensorsFile::open(path);
  std::string raw = testing::read_file(path);
  uint64_t header_size = 0;
  std::memcpy(&header_size, raw.data(), 8);
  // Tensors are listed by offset, so the first one starts the data buffer.
  const std::byte* data_start = file.tensors().front().bytes.data();
  for (const auto& tensor : file.tensors()) {
    size_t offset = 8 + header_size + static_cast<size_t>(tensor.bytes.data() - data_start);
    ASSERT_LE(offset + tensor.bytes.size(), raw.size());
    EXPECT_EQ(std::memcmp(tensor.bytes.data(), raw.data() + offset, tensor.bytes.size()), 0)
        << tensor.name;
  }
}

TEST(Safetensors, WriterRoundTripsEveryDtype) {
  TempDir dir;
  const DType all[] = {DType::BOOL, DType::U8,  DType::I8,  DType::F8_E4M3, DType::F8_E5M2,
                       DType::U16,  DType::I16, DType::F16, DType::BF16,    DType::U32,
                       DType::I32,  DType::F32, DType::U64, DType::I64,     DType::F64};
  std::vector<std::vector<std::byte>> storage;
  std::vector<HostTensor> tensors;
  int index = 0;
  for (DType dtype : all) {
    Shape shape = {3, index % 4 + 1};
    std::vector<std::byte> bytes(shape_numel(shape) * dtype_size(dtype));
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(i * 37 + index);
    storage.push_back(std::move(bytes));
    HostTensor tensor;
    tensor.name = "tensor_" + std::string(dtype_name(dtype));
    tensor.dtype = dtype;
    tensor.shape = shape;
    tensor.bytes = storage.back();
    tensors.push_back(tensor);
    ++index;
  }
  // A scalar and an empty tensor are legal too.
  std::vector<std::byte> scalar(4, std::byte{1});
  tensors.push_back(HostTensor{"scalar", DType::F32, {}, scalar, nullptr});
  tensors.push_back(HostTensor{"empty", DType::F32, {0, 5}, {}, nullptr});

  auto path = dir / "out.safetensors";
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "round trip"}});
  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file.metadata().at("note"), "round trip");
  ASSERT_EQ(file.tensors().size(), tensors.size());
  for (const auto& expected : tensors) {
    const HostTensor& actual = file.get(expected.name);
    EXPECT_EQ(actual.dtype, expected.dtype) << expected.name;
    EXPECT_EQ(actual.shape, expected.shape) << expected.name;
    ASSERT_EQ(actual.bytes.size(), expected.bytes.size()) << expected.name;
    EXPECT_EQ(std::memcmp(actual.bytes.data(), expected.bytes.data(), expected.bytes.size()), 0)
        << expected.name;
  }
  // The header is padded so that the data begins 8-byte aligned.
  std::string raw = testing::read_file(path);
  uint64_t header_size = 0;
  std::memcpy(&header_size, raw.data(), 8);
  EXPECT_EQ((8 + header_size) % 8, 0u);
  // Nothing but the output is left in the directory.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);
}

TEST(Safetensors, RewritingAFixtureReproducesItsTensors) {
  TempDir dir;
  auto original = SafetensorsFile::open(testing::model_path("tiny-qwen2/model.safetensors"));
  write_safetensors(dir / "copy.safetensors", original.tensors(), original.metadata());
  auto copy = SafetensorsFile::open(dir / "copy.safetensors");
  ASSERT_EQ(copy.tensors().size(), original.tensors().size());
  for (const auto& tensor : original.tensors()) {
    const HostTensor& other = copy.get(tensor.name);
    ASSERT_EQ(other.bytes.size(), tensor.bytes.size());
    EXPECT_EQ(std::memcmp(other.bytes.data(), tensor.bytes.data(), tensor.bytes.size()), 0);
  }
}

TEST(Safetensors, FailedWriteLeavesNoFile) {
  TempDir dir;
  std::vector<std::byte> bytes(8);
  // The second tensor's byte count does not match its shape: nothing may be written.
  std::vector<HostTensor> tensors = {{"good", DType::F32, {2}, bytes, nullptr},
                                     {"bad", DType::F32, {3}, bytes, nullptr}};
  EXPECT_THROW(write_safetensors(dir / "out.safetensors", tensors), Error);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  // An existing file is not replaced by a failed write.
  testing::write_file(dir / "keep.safetensors", "old contents");
  EXPECT_THROW(write_safetensors(dir / "keep.safetensors", tensors), Error);
  EXPECT_EQ(testing::read_file(dir / "keep.safetensors"), "old contents");
  EXPECT_THROW(write_safetensors(dir / "missing-dir" / "out.safetensors", {}), Error);
}

}  // namespace
}  // namespace flow2
