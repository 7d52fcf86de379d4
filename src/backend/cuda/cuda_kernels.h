// Kernel launchers of the CUDA backend: raw device pointers in, work queued on `stream`, the
// launch checked. Kept free of flow2's C++20 headers so that nvcc compiles only kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace flow2::cuda {

// Weight layouts the kernels read: dense rows, or block-quantized rows in the split layout of
// cuda_split_layout.h (codes, then a scale and offset per group), named by their flow2::DType.
enum class WeightFormat : int { F32, BF16, F16, Q8_0, Q4_0, Q4_1, Q4_A64, Q4_K };
// Same order as flow2::Activation.
enum class ActivationKind : int { Silu, GeluTanh, GeluErf, Relu };

// Throws flow2::Error naming `what` if the last launch failed (defined in cuda_context.cpp).
void check_launch(const char* what);
// Multiprocessors of the current device, by which launchers size their grids (132, an H100's,
// where the device cannot be asked; cuda_devices.cu).
int multiprocessor_count();

// Rows of x up to which matmul runs the GEMV kernels (decoding) instead of a GEMM.
constexpr int64_t kGemvMaxRows = 4;

// out[m, n] = x[m, k] * weight[n, k]^T (+ bias[n]), m <= kGemvMaxRows; float32 accumulation.
// The kernel starts reading `weight` before the previous kernel has finished (cuda_launch.cuh):
// weights are uploaded by copies, never written by a kernel. x16_groups: null, or one row of x
// staged as int16 groups by the op that wrote it (x16_groups_bytes; cuda_int16_x.cuh), which
// 4-bit weights then read instead of quantizing x in every block; the results are the same.
void gemv(WeightFormat format, const void* weight, const float* x, const float* bias, float* out,
          int64_t m, int64_t n, int64_t k, cudaStream_t stream, const void* x16_groups = nullptr);

// Bytes of a row of k values staged as int16 groups; whether the GEMVs read such a staging for
// rows of k (k a multiple of 128, at most 16384).
int64_t x16_groups_bytes(int64_t k);
bool takes_x16_groups(int64_t k);

// Matrices of one format that multiply the same x (shared_input_matmul: attention's q, k and v),
// in one launch: out[m, n] = x[m, k] * weight[n, k]^T (+ bias[n]) for each segment. gemv is the
// one-segment case.
constexpr int kGemvMaxSegments = 4;
struct GemvSegment {
  const void* weight = nullptr;
  const float* bias = nullptr;  // null: none
  float* out = nullptr;
  int64_t n = 0;  // > 0
};
struct GemvSegments {
  GemvSegment segment[kGemvMaxSegments];
  int count = 0;
};
void gemv_segments(WeightFormat format, const GemvSegments& segments, const float* x, int64_t m,
                   int64_t k, cudaStream_t stream, const void* x16_groups = nullptr);

// out[m, n] = act(x gate^T) * (x up^T) for gate and up weights [n, k] (dense or split layout),
// m <= kGemvMaxRows, in one pass; equal to two gemv calls and gated_activation (bit for bit for
// dense weights, within float rounding for the split layout: its rows may split differently).
// x16_groups as for gemv; out_x16: null, or (where gemv_gated_stages_output) where out is also
// staged as int16 groups for the GEMV that multiplies it next (x16_groups_bytes(n)).
bool gemv_gated_supported(WeightFormat format);
void gemv_gated(WeightFormat format, const void* gate, const void* up, const float* x, float* out,
                int64_t m, int64_t n, int64_t k, ActivationKind activation, cudaStream_t stream,
                const void* x16_groups = nullptr, void* out_x16 = nullptr);
bool gemv_gated_stages_output(WeightFormat format, int64_t m, int64_t n);

// Rows [first, first + count) of a weight decoded to bf16 (prefill GEMMs of quantized weights).
void dequantize_rows_bf16(WeightFormat format, const void* weight, int64_t first, int64_t count,
                          int64_t k, void* out, cudaStream_t stream);
// float32 to bf16 / f16 (f16 saturates at +-65504 rather than overflowing to infinity).
void convert_f32_to_bf16(const float* in, void* out, int64_t count, cudaStream_t stream);
void convert_f32_to_f16(const float* in, void* out, int64_t count, cudaStream_t stream);
// out[r, :] = bias for every row r of out [m, n].
void broadcast_rows(float* out, const float* bias, int64_t m, int64_t n, cudaStream_t stream);

// out[i] (+)= decoded table row ids[i].
void embedding(WeightFormat format, const void* table, const int32_t* ids, int64_t count,
               int64_t width, float* out, bool accumulate, cudaStream_t stream);
// out_x16 as for add_rms_norm.
void rms_norm(float* out, const float* x, const float* weight, int64_t rows, int64_t width,
              float eps, cudaStream_t stream, void* out_x16 = nullptr);
void layer_norm(float* out, const float* x, const float* weight, const float* bias, int64_t rows,
                int64_t width, float eps, cudaStream_t stream);
// In place, rotate-half layout, angle = float(position) * inv_freq[i].
void rope(float* x, int64_t rows, int64_t heads, int64_t head_dim, const int32_t* positions,
          const float* inv_freq, cudaStream_t stream);
// out_bf16, when set, receives out rounded to bf16 as convert_f32_to_bf16 rounds it (the x of
// the GEMM that follows, cuda_matmul.cpp); also for add_rms_norm and flash_attention.
void gated_activation(float* out, const float* gate, const float* up, int64_t count,
                      ActivationKind activation, void* out_bf16, cudaStream_t stream);
// gated_activation of bf16 (half: f16) gate and up values (prompts' GEMM outputs).
void gated_activation_16bit(float* out, const void* gate, const void* up, bool half, int64_t count,
                            ActivationKind activation, void* out_bf16, cudaStream_t stream);
void activation(float* x, int64_t count, ActivationKind activation, cudaStream_t stream);
void add(float* out, const float* a, const float* b, int64_t count, cudaStream_t stream);
// Rows x [batch * n_tokens, width] to rows n_past.. of each sequence of cache
// [batch * capacity, width]; sequence b's n_past is device_n_past[b] when that is set.
// The cache is float32 or, with `bf16_cache`, bf16.
void kv_write(void* cache, bool bf16_cache, const float* x, int64_t batch, int64_t n_tokens,
              int64_t width, int64_t capacity, int64_t n_past, const int64_t* device_n_past,
              cudaStream_t stream);

// out[r] = the index of row r's largest value (the lowest such index), cuda_sampling.cu.
void argmax_rows(const float* logits, int64_t rows, int64_t width, int32_t* out,
                 cudaStream_t stream);

// Sampling's choice for each row (cuda_sample_rows.cu): the token choose_token (sampler.h) picks
// from the row's scores with the row's uniform draw, temperature > 0 (0 is argmax_rows).
struct SampleParams {
  const float* scores = nullptr;          // [rows, vocab], penalties applied
  unsigned long long* weights = nullptr;  // [rows, vocab] scratch
  const double* uniforms = nullptr;       // [rows], each in [0, 1)
  int32_t* out = nullptr;                 // [rows]
  int64_t rows = 0;
  int64_t vocab = 0;  // at most sampling::kMaxVocab
  float temperature = 1.0f;
  int64_t top_k = 0;  // 0 (or vocab and more): off
  float top_p = 1.0f;
  float min_p = 0.0f;
};
void sample_rows(const SampleParams& params, cudaStream_t stream);
// scores[r, ids[j]] = sampling::penalized_score(scores[r, ids[j]], repetition_penalty,
// amounts[j]) in every row r of scores [rows, vocab]; the ids are distinct.
void apply_penalties(float* scores, int64_t rows, int64_t vocab, const int32_t* ids,
                     const float* amounts, int64_t count, float repetition_penalty,
                     cudaStream_t stream);

// Fused ops (cuda_fused.cu). x += delta, out = rms_norm(x) * weight.
// out_x16: null, or (one row whose width takes_x16_groups, pointers for which norm_in_quads
// holds) where out is also staged as int16 groups for the GEMVs (x16_groups_bytes).
void add_rms_norm(float* x, const float* delta, float* out, const float* weight, int64_t rows,
                  int64_t width, float eps, void* out_bf16, cudaStream_t stream,
                  void* out_x16 = nullptr);
// Whether the norms above take their rows in float4 quads (width a multiple of 4, 16-byte
// aligned rows): only then can they stage their output as int16 groups.
bool norm_in_quads(const void* x, const void* delta, const void* out, const void* weight,
                   const void* out_bf16, int64_t width);
// rms_norm with each thread's values in registers (cuda_fused.cu), for rows of up to 64 x 256
// values; false (nothing launched) for wider ones.
bool rms_norm_in_registers(float* out, const float* x, const float* weight, int64_t rows,
                           int64_t width, float eps, cudaStream_t stream, void* out_x16);
// rope of q and k in place (when inv_freq is set), k and v written to their caches at rows
// n_past.. of each sequence (device_n_past[b] for sequence b when that is set).
struct RopeCacheParams {
  float* q = nullptr;  // [rows, q_heads * head_dim]
  float* k = nullptr;  // [rows, kv_heads * head_dim]
  const float* v = nullptr;
  void* k_cache = nullptr;  // [batch * capacity, kv_heads * head_dim], float32 or bf16
  void* v_cache = nullptr;
  bool bf16_cache = false;
  const int32_t* positions = nullptr;  // [rows]
  const float* inv_freq = nullptr;     // [head_dim / 2], or null: no rotation
  int64_t rows = 0, n_tokens = 1, q_heads = 1, kv_heads = 1, head_dim = 2, capacity = 1;
  int64_t n_past = 0;
  const int64_t* device_n_past = nullptr;
};
void rope_and_cache(const RopeCacheParams& params, cudaStream_t stream);
// gemv_segments of q, k and v (qkv.segment[0..2], the products rope_and_cache's `rope` names as
// q, k and v) followed by rope_and_cache, in one launch: the GEMV's epilogue rotates and stores
// (Backend::qkv_rope_cache). Equal bit for bit to the two. The rows of a head pair up within a
// warp's tile of rows, so it takes head dimensions that are multiples of kRopeTileMultiple.
constexpr int64_t kRopeTileMultiple = 32;
// Whether gemv_rope_cache takes q, k and v of `rows` rows together and k columns in `format`: the
// dense kernel only where it runs at most 4 warps a row (a block then holds a pair of rows).
bool gemv_rope_cache_supported(WeightFormat format, int64_t rows, int64_t k);
void gemv_rope_cache(WeightFormat format, const GemvSegments& qkv, const float* x, int64_t m,
                     int64_t k, const RopeCacheParams& rope, cudaStream_t stream,
                     const void* x16_groups = nullptr);

struct AttentionParams {
  const float* q = nullptr;  // [batch * n_tokens, n_heads * head_dim]
  const void* k = nullptr;   // [batch * capacity, n_kv_heads * head_dim], float32 or bf16
  const void* v = nullptr;
  bool bf16_cache = false;
  float* out = nullptr;      // like q
  void* out_bf16 = nullptr;  // flash_attention only: out rounded to bf16 as well (when set)
  // decode_attention only, one sequence: out staged as int16 groups as well (stage_x16's
  // layout, for the 4-bit GEMV of the o projection), when set.
  void* out_x16 = nullptr;
  int64_t key_groups = 0;    // flash_attention only: 1 or 2 (tests); 0 chooses by the shape
  float* partial = nullptr;  // splits > 1: [splits, batch * n_tokens * n_heads, head_dim + 2]
  int64_t batch = 1, n_tokens = 1, n_past = 0, n_heads = 1, n_kv_heads = 1, head_dim = 1;
  int64_t capacity = 1, window = 0;
  // Split s takes keys [s * L, (s + 1) * L), L = ceil((n_past + n_tokens) / splits).
  int64_t splits = 1;
  float scale = 1.0f;
  // When set, sequence b's n_past is device_n_past[b] (staged values: graph replays of
  // decoding steps, and sequences at different points).
  const int64_t* device_n_past = nullptr;
};
// Largest head dimension the attention kernel takes (a multiple of 4: rows move as float4).
constexpr int64_t kAttentionMaxHeadDim = 256;
// Blocks the attention kernel runs without splitting the keys (the caller picks the splits).
int64_t attention_blocks(const AttentionParams& params);
void attention(const AttentionParams& params, cudaStream_t stream);
// One new token per sequence (decoding) in one launch (cuda_decode_attention.cu): head dimensions
// 64 and 128, up to 8 query heads per kv head. `splits` blocks per (sequence, kv head) take the
// key chunks in turn; with more than one, params.partial holds splits * batch * n_kv_heads
// records of decode_attention_record_floats, and `counters` batch * n_kv_heads zeros (the
// last block of each pair merges the records and resets its counter).
bool decode_attention_supported(const AttentionParams& params);
int64_t decode_attention_splits(const AttentionParams& params, int64_t keys, int multiprocessors);
int64_t decode_attention_record_floats(const AttentionParams& params);
void decode_attention(const AttentionParams& params, int64_t splits, int* counters,
                      cudaStream_t stream);
// The same on bf16 tensor cores for prompts (cuda_flash_attention.cu): q, k and v are rounded to
// bf16, scores and sums stay float32. Head dimensions 16, 32, 64 and 128.
bool flash_attention_supported(int64_t head_dim);
void flash_attention(const AttentionParams& params, cudaStream_t stream);

}  // namespace flow2::cuda
