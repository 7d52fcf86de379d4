// RoPE inverse frequencies: properties every rope type must have.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "model/rope_frequencies.h"

namespace flow2 {
namespace {

RopeConfig rope_of(RopeType type, double factor = 1.0) {
  RopeConfig rope;
  rope.type = type;
  rope.theta = 10000.0;
  rope.factor = factor;
  return rope;
}

TEST(Rope, DefaultFrequenciesFollowTheFormula) {
  auto inv_freq = rope_inverse_frequencies(rope_of(RopeType::Default), 64, 2048, 2048);
  ASSERT_EQ(inv_freq.size(), 32u);
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    double expected = std::pow(10000.0, -2.0 * i / 64.0);
    EXPECT_NEAR(inv_freq[i], expected, expected * 1e-6) << i;
  }
}

TEST(Rope, LinearDividesEveryFrequency) {
  auto plain = rope_inverse_frequencies(rope_of(RopeType::Default), 64, 2048, 2048);
  auto linear = rope_inverse_frequencies(rope_of(RopeType::Linear, 4.0), 64, 2048, 2048);
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_FLOAT_EQ(linear[i], plain[i] / 4.0f);
}

TEST(Rope, Llama3ScalesOnlyLongWavelengths) {
  RopeConfig rope = rope_of(RopeType::Llama3, 8.0);
  rope.theta = 500000.0;
  rope.original_max_position_embeddings = 8192;
  auto plain = rope_inverse_frequencies(rope_of(RopeType::Default), 128, 131072, 131072);
  RopeConfig plain_config = rope;
  plain_config.type = RopeType::Default;
  plain = rope_inverse_frequencies(plain_config, 128, 131072, 131072);
  auto scaled = rope_inverse_frequencies(rope, 128, 131072, 131072);
  int high = 0, low = 0, medium = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    double wavelength = 2 * std::numbers::pi / plain[i];
    if (wavelength < 8192 / 4.0) {
      EXPECT_FLOAT_EQ(scaled[i], plain[i]);  // high frequencies untouched
      ++high;
    } else if (wavelength > 8192 / 1.0) {
      EXPECT_FLOAT_EQ(scaled[i], plain[i] / 8.0f);  // low frequencies interpolated
      ++low;
    } else {
      EXPECT_LT(scaled[i], plain[i]);  // in between: a blend of the two
      EXPECT_GT(scaled[i], plain[i] / 8.0f);
      ++medium;
    }
  }
  EXPECT_GT(high, 0);
  EXPECT_GT(low, 0);
  EXPECT_GT(medium, 0);
}

TEST(Rope, DynamicGrowsTheBaseOnlyBeyondTheTrainedContext) {
  RopeConfig rope = rope_of(RopeType::Dynamic, 2.0);
  rope.original_max_position_embeddings = 256;
  RopeFrequencies frequencies(rope, 32, 256);
  auto plain = rope_inverse_frequencies(rope_of(RopeType::Default), 32, 256, 256);
  auto within = frequencies.for_length(100);
  std::vector<float> within_copy(within.begin(), within.end());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_FLOAT_EQ(within_copy[i], plain[i]);
  auto beyond = frequencies.for_length(512);
  // base' = base * (factor * 512 / 256 - (factor - 1))^(d / (d - 2)) = base * 3^(32/30)
  double base = 10000.0 * std::pow(3.0, 32.0 / 30.0);
  for (size_t i = 0; i < beyond.size(); ++i) {
    double expected = std::pow(base, -2.0 * i / 32.0);
    EXPECT_NEAR(beyond[i], expected, expected * 1e-5) << i;
  }
  auto back = frequencies.for_length(100);  // a short sequence again: original frequencies
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_FLOAT_EQ(back[i], plain[i]);
}

}  // namespace
}  // namespace flow2
