// Float conversions checked against values that follow from the formats' definitions.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>

#include "flow2/dtype.h"

namespace flow2 {
namespace {

TEST(DType, SizesAndNamesFollowTheSafetensorsSpec) {
  const std::pair<const char*, size_t> expected[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"U16", 2},  {"I16", 2}, {"F16", 2}, {"BF16", 2},    {"U32", 4},
      {"I32", 4},  {"F32", 4}, {"U64", 8}, {"I64", 8},     {"F64", 8}};
  for (const auto& [name, size] : expected) {
    auto dtype = dtype_from_name(name);
    ASSERT_TRUE(dtype.has_value()) << name;
    EXPECT_EQ(dtype_size(*dtype), size) << name;
    EXPECT_EQ(dtype_name(*dtype), name);
  }
  EXPECT_FALSE(dtype_from_name("F32 ").has_value());
  EXPECT_FALSE(dtype_from_name("float32").has_value());
}

TEST(DType, Float16KnownValues) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);               // largest finite
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // halfway to the next step rounds to infinity
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie to even: 0
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 steps: tie to even: 2
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to the even mantissa, 1.
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
}

TEST(DType, Float16RoundTripsEveryFiniteValue) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    float value = f16_to_f32(static_cast<uint16_t>(bits));
    if (std::isnan(value)) continue;
    ASSERT_EQ(f32_to_f16(value), bits) << "bits " << bits;
  }
}

TEST(DType, BFloat16RoundsToNearestEven) {
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even, 1.
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3f81);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    float value = bf16_to_f32(static_cast<uint16_t>(bits));
    if (std::isnan(value)) continue;
    ASSERT_EQ(f32_to_bf16(value), bits);
  }
}

TEST(DType, Float8KnownValues) {
  EXPECT_EQ(f8_e4m3_to_f32(0x38), 1.0f);    // exponent 7 = bias
  EXPECT_EQ(f8_e4m3_to_f32(0x7e), 448.0f);  // largest finite of E4M3FN
  EXPECT_EQ(f8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(f8_e4m3_to_f32(0xb8), -1.0f);
  EXPECT_TRUE(std::isnan(f8_e4m3_to_f32(0x7f)));
  EXPECT_EQ(f8_e5m2_to_f32(0x3c), 1.0f);  // exponent 15 = bias
  EXPECT_EQ(f8_e5m2_to_f32(0x7b), 57344.0f);
  EXPECT_EQ(f8_e5m2_to_f32(0x01), std::ldexp(1.0f, -16));
  EXPECT_TRUE(std::isinf(f8_e5m2_to_f32(0x7c)));
}

TEST(DType, ConvertToF32HandlesEveryType) {
  const int64_t i64[] = {-3, 7};
  const uint8_t booleans[] = {0, 1};
  const double f64[] = {0.5, -1.25};
  float out[2];
  convert_to_f32(DType::I64, i64, 2, out);
  EXPECT_EQ(out[0], -3.0f);
  EXPECT_EQ(out[1], 7.0f);
  convert_to_f32(DType::BOOL, booleans, 2, out);
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[1], 1.0f);
  convert_to_f32(DType::F64, f64, 2, out);
  EXPECT_EQ(out[0], 0.5f);
  EXPECT_EQ(out[1], -1.25f);
}

}  // namespace
}  // namespace flow2
