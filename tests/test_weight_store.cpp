// Sharded and single-file checkpoints hold the same tensors; broken indexes give clear errors.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "flow2/error.h"
#include "flow2/weight_store.h"
#include "test_support.h"

namespace flow2 {
namespace {

using testing::TempDir;

std::string error_of(const std::filesystem::path& directory) {
  try {
    open_safetensors_weights(directory);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(WeightStore, ShardedCheckpointHoldsTheSameTensors) {
  auto single = open_safetensors_weights(testing::model_path("tiny-llama"));
  auto sharded = open_safetensors_weights(testing::model_path("tiny-llama-sharded"));
  EXPECT_EQ(sharded.files().size(), 8u);
  EXPECT_EQ(single.files().size(), 1u);
  ASSERT_EQ(single.tensors().size(), sharded.tensors().size());
  for (const auto& [name, tensor] : single.tensors()) {
    const HostTensor& other = sharded.get(name);
    EXPECT_EQ(other.shape, tensor.shape) << name;
    ASSERT_EQ(other.bytes.size(), tensor.bytes.size()) << name;
    EXPECT_EQ(std::memcmp(other.bytes.data(), tensor.bytes.data(), tensor.bytes.size()), 0) << name;
  }
  uint64_t total = 0;
  for (const auto& file : sharded.files()) total += std::filesystem::file_size(file);
  EXPECT_EQ(sharded.bytes_on_disk(), total);
}

TEST(WeightStore, MissingTensorNamesTheCheckpoint) {
  auto store = open_safetensors_weights(testing::model_path("tiny-smol"));
  try {
    store.get("lm_head.weight");
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("missing tensor 'lm_head.weight'"), std::string::npos);
    EXPECT_NE(std::string(error.what()).find("tiny-smol"), std::string::npos);
  }
}

TEST(WeightStore, DirectoryWithoutWeights) {
  TempDir dir;
  EXPECT_NE(error_of(dir.path()).find("no model.safetensors"), std::string::npos);
  testing::write_file(dir / "pytorch_model.bin", "x");
  EXPECT_NE(error_of(dir.path()).find("pytorch_model.bin"), std::string::npos);
}

class BrokenIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::copy_directory(testing::model_path("tiny-llama-sharded"), dir_ / "model");
  }
  std::filesystem::path model() const { return dir_ / "model"; }
  nlohmann::json index() const {
    return nlohmann::json::parse(testing::read_file(model() / "model.safetensors.index.json"));
  }
  void write_index(const nlohmann::json& value) const {
    testing::write_file(model() / "model.safetensors.index.json", value.dump());
  }
  TempDir dir_;
};

TEST_F(BrokenIndex, MissingShard) {
  std::filesystem::remove(model() / "model-00003-of-00008.safetensors");
  std::string message = error_of(model());
  EXPECT_NE(message.find("shard 'model-00003-of-00008.safetensors' does not exist"),
            std::string::npos)
      << message;
}

TEST_F(BrokenIndex, TensorNotInItsShard) {
  auto value = index();
  value["weight_map"]["model.norm.weight"] = "model-00001-of-00008.safetensors";
  write_index(value);
  std::string message = error_of(model());
  EXPECT_NE(message.find("tensor 'model.norm.weight' is listed"), std::string::npos) << message;
}

TEST_F(BrokenIndex, ShardOutsideTheDirectory) {
  auto value = index();
  value["weight_map"]["model.norm.weight"] = "../elsewhere.safetensors";
  write_index(value);
  EXPECT_NE(error_of(model()).find("outside the model directory"), std::string::npos);
}

TEST_F(BrokenIndex, MalformedIndex) {
  testing::write_file(model() / "model.safetensors.index.json", "{\"weight_map\": ");
  std::string message = error_of(model());
  EXPECT_NE(message.find("model.safetensors.index.json: malformed JSON"), std::string::npos)
      << message;
  write_index(nlohmann::json{{"metadata", {}}});
  EXPECT_NE(error_of(model()).find("missing 'weight_map'"), std::string::npos);
}

TEST_F(BrokenIndex, CorruptShard) {
  auto shard = model() / "model-00005-of-00008.safetensors";
  std::string bytes = testing::read_file(shard);
  testing::write_file(shard, bytes.substr(0, bytes.size() / 2));
  std::string message = error_of(model());
  EXPECT_NE(message.find("model-00005-of-00008.safetensors"), std::string::npos) << message;
}

}  // namespace
}  // namespace flow2
