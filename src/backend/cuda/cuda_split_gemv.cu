// Matrix-vector products (1-4 rows of x) straight from split-layout rows (cuda_split_layout.h).
//
// A lane loads 16 bytes of codes per row (a group of 32 4-bit codes, or half a group of 8-bit
// ones) and the group's scale and offset, through L1 without allocating there (load_once); the x
// values of a piece are 32 consecutive floats, one 128-byte line, read from L1. Besides DRAM,
// what limits such a kernel is L1 traffic for x: 32 lanes reading 32 different lines take 32
// cache wavefronts per load. So a warp covers 8 row slots x 4 lanes: the 4 lanes of a slot read
// 4 consecutive pieces (64 contiguous bytes of a row), and the 8 slots read the same x lines
// (one wavefront serves all 8); each lane also holds R rows, which reuse its x registers R
// times. Loads of the next U pieces are issued before the current ones are used. Short matrices
// split each row's pieces over up to 8 warps of a block, whose sums meet in shared memory (no
// atomics: results do not depend on timing). One launch may cover several matrices of the same
// x (segments, cuda_gemv_segments.cuh); the gated feed-forward's kernel gives each slot rows of
// both gate and up, so that act(gate) * up is formed after the sums.
//
// Per code the inner loop spends a shift and a mask-or (code_unit: the code as a float in
// [1, 2)) and one FMA per row of x; sum(x) per piece is shared by the R rows; the scale and
// offset are applied once per piece. Measured on an H100 (14336x4096 and 4096x14336, one row of
// x): about 1.4-1.5 TB/s of 4-bit weights and 2.0-2.1 TB/s of Q8_0, issue-bound (a tensor-core
// variant that fed the codes to bf16 mma.sync was slower: the mma's k layout needs 4-byte code
// loads from rows in element order).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "backend/cuda/cuda_gemv_segments.cuh"
#include "backend/cuda/cuda_int16_x.cuh"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_math.cuh"
#include "backend/cuda/cuda_rope_epilogue.cuh"
#include "backend/cuda/cuda_split_codes.cuh"
#include "backend/cuda/cuda_split_layout.h"

namespace flow2::cuda {
namespace {

constexpr int kWarps = 8;                   // per block
constexpr int kLanesPerSlot = 4;            // lanes that share a row
constexpr int kSlots = 32 / kLanesPerSlot;  // rows (times R) per warp

// The codes and parameters of U pieces of R rows: one pipeline stage of a lane.
template <int R, int U>
struct Stage {
  uint4 codes[U][R];
  float2 params[U][R];
};

template <WeightFormat F, int R, int U>
__device__ inline void load_stage(Stage<R, U>& stage, const uint8_t* const (&rows)[R],
                                  int64_t code_bytes, int64_t piece, int64_t step, int64_t pieces) {
  constexpr int kPiecesPerGroup = split_layout(F).group / split_piece_elements(F);
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int64_t p = piece + u * step;
    if (p < pieces) {
#pragma unroll
      for (int r = 0; r < R; ++r) {
        stage.codes[u][r] = load_once(reinterpret_cast<const uint4*>(rows[r]) + p);
        stage.params[u][r] =
            split_params<F>(rows[r] + code_bytes, p / kPiecesPerGroup, StreamingLoad{});
      }
    }
  }
}

// sum[r][m] += row r's piece . x[m]'s piece, for the piece whose x values start at `xp`.
template <WeightFormat F, int M, int R>
__device__ inline void accumulate_piece(const uint4 (&codes)[R], const float2 (&params)[R],
                                        const float* xp, int64_t k, uint32_t mask,
                                        float (&sum)[R][M]) {
  constexpr int kBits = split_layout(F).code_bits;
  constexpr int kPerWord = 32 / kBits;  // codes per 32-bit word
  constexpr float kUnit = 1 << kBits;   // code_unit's 2^kBits
  constexpr float kBias = kBits == 8 ? 128.0f : 0.0f;
  float x_sum[M] = {};
  float dot[R][M] = {};
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    float unit[R][kPerWord];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      uint32_t word = piece_word(codes[r], w);
      if constexpr (kBits == 8) word ^= 0x80808080u;
#pragma unroll
      for (int i = 0; i < kPerWord; ++i) unit[r][i] = code_unit<kBits>(word, i, mask);
    }
#pragma unroll
    for (int h = 0; h < kPerWord / 4; ++h) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const float4 xv =
            __ldg(reinterpret_cast<const float4*>(xp + m * k) + w * (kPerWord / 4) + h);
        x_sum[m] += (xv.x + xv.y) + (xv.z + xv.w);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          dot[r][m] = fmaf(unit[r][4 * h], xv.x, dot[r][m]);
          dot[r][m] = fmaf(unit[r][4 * h + 1], xv.y, dot[r][m]);
          dot[r][m] = fmaf(unit[r][4 * h + 2], xv.z, dot[r][m]);
          dot[r][m] = fmaf(unit[r][4 * h + 3], xv.w, dot[r][m]);
        }
      }
    }
  }
  // w = scale * q + offset with q = kUnit * (u - 1) - kBias:
  // sum(w x) = scale * kUnit * sum(u x) + (offset - scale * (kUnit + kBias)) * sum(x).
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const float a = params[r].x * kUnit;
    const float c = fmaf(-params[r].x, kUnit + kBias, params[r].y);
#pragma unroll
    for (int m = 0; m < M; ++m) sum[r][m] = fmaf(a, dot[r][m], fmaf(c, x_sum[m], sum[r][m]));
  }
}

// The same from x staged as int16 (cuda_int16_x.cuh; 4-bit codes, one row of x): per row the
// group's integer sum of code * x16, then scale * d * sum + offset * d * sum(x16). For Q4_0
// (offset -8 * scale) the integer sum starts at -8 * sum(x16), so one product scales it.
// kGlobal: `staged` is in global memory (kStageGlobal), read through L1 (reading from L2 alone
// made the gate/up and q/k/v GEMVs 1-2 us slower, H100). Each staging has its own address in a
// step (Context::x16_groups_buffer), so no line of it is in L1 from an earlier write.
template <WeightFormat F, int R, bool kGlobal>
__device__ inline void accumulate_group_int16(const uint4 (&codes)[R], const float2 (&params)[R],
                                              const uint4* staged, int64_t k, int64_t p,
                                              float (&sum)[R][1]) {
  uint4 xw[4];
  const auto* meta_of = reinterpret_cast<const int2*>(staged + k / 8) + p;
  int2 meta;
  if constexpr (kGlobal) {
#pragma unroll
    for (int w = 0; w < 4; ++w) xw[w] = __ldg(staged + x16_word(p, w));
    meta = __ldg(meta_of);
  } else {
#pragma unroll
    for (int w = 0; w < 4; ++w) xw[w] = staged[x16_word(p, w)];
    meta = *meta_of;
  }
  const float d = __int_as_float(meta.x);
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if constexpr (F == WeightFormat::Q4_0) {
      const int total = group_dot(codes[r], xw, -8 * meta.y);
      sum[r][0] = fmaf(params[r].x * d, __int2float_rn(total), sum[r][0]);
    } else {
      const int total = group_dot(codes[r], xw, 0);
      const float value =
          fmaf(params[r].x, __int2float_rn(total), params[r].y * __int2float_rn(meta.y));
      sum[r][0] = fmaf(d, value, sum[r][0]);
    }
  }
}

// A lane's share of its R rows (rows[r]) times x: the pieces of its column and warp, U at a time
// with the next U loading, then the sums of the slot's lanes. Leaves in mine[m] the total of row
// r = column (zeros in lanes with column >= R).
// With kStage > 0 (M = 1, 4-bit codes, k a multiple of 128 and at most 1024 kStage) the block
// first stages x as int16 in `staged` (staged_x16_bytes(k) of shared memory); with kStage =
// kStageGlobal `staged` is the staging the op that wrote x left in global memory. `before_wait()`
// runs while the first loads are on their way, before the wait for the previous kernel.
template <WeightFormat F, int M, int R, int U, int kStage, typename BeforeWait>
__device__ inline void slot_sums(const uint8_t* const (&rows)[R], const float* __restrict__ x,
                                 int64_t k, int warps_per_row, float (&mine)[M],
                                 const uint4* staged, BeforeWait&& before_wait) {
  constexpr int kElements = split_piece_elements(F);
  const int warp = threadIdx.x / 32, column = threadIdx.x % 32 % kLanesPerSlot;
  const int part = warp % warps_per_row;
  const int64_t code_bytes = split_code_bytes(F, k);
  const uint32_t mask = opaque(code_unit_mask<split_layout(F).code_bits>());
  float sum[R][M] = {};
  const int64_t pieces = k / kElements;
  const int64_t step = static_cast<int64_t>(warps_per_row) * kLanesPerSlot;
  int64_t piece = static_cast<int64_t>(part) * kLanesPerSlot + column;
  Stage<R, U> current, next;
  load_stage<F>(current, rows, code_bytes, piece, step, pieces);
  before_wait();
  // The first stage of weights (which never change on the GPU) is on its way while the previous
  // kernel, which wrote x, drains.
  wait_for_prior_kernels();
  // Where the block stages x itself, `staged` is its own shared memory.
  if constexpr (kStage > kStageGlobal) stage_x16<kStage>(x, k, const_cast<uint4*>(staged));
  for (; piece < pieces; piece += U * step) {
    const int64_t following = piece + U * step;
    if (following < pieces) load_stage<F>(next, rows, code_bytes, following, step, pieces);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t p = piece + u * step;
      if (p < pieces) {
        if constexpr (kStage > 0) {
          static_assert(M == 1 && split_layout(F).code_bits == 4);
          static_assert(split_piece_elements(F) == kInt16Group);
          accumulate_group_int16<F, R, kStage == kStageGlobal>(current.codes[u], current.params[u],
                                                               staged, k, p, sum);
        } else {
          accumulate_piece<F, M, R>(current.codes[u], current.params[u], x + p * kElements, k, mask,
                                    sum);
        }
      }
    }
    current = next;
  }

  // The slot's 4 lanes hold parts of the same rows: add them, then lane `column` keeps row r =
  // column (R <= 4).
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
#pragma unroll
      for (int offset = 1; offset < kLanesPerSlot; offset *= 2) {
        sum[r][m] += __shfl_xor_sync(0xffffffff, sum[r][m], offset);
      }
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) mine[m] = 0.0f;
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int m = 0; m < M; ++m) mine[m] = column == r ? sum[r][m] : mine[m];
  }
}

// Rows first .. first + kSlots * R - 1 of a warp: slot s holds rows first + s * R + r. A block's
// rows belong to one of up to S segments (one matrix, its bias and its output). With kRope the
// segments are q, k and v of qkv_rope_cache, and the epilogue rotates q and k and stores k and v
// in the cache (cuda_rope_epilogue.cuh: local index l of a warp's rows stands for
// paired_row(first, l) in q and k, so a pair's rows are neighbouring lanes).
template <WeightFormat F, int M, int R, int U, int kMinBlocks, int S, int kStage, bool kRope>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks)
    gemv_split_kernel(const __grid_constant__ BlockSegments segments, const float* __restrict__ x,
                      const uint4* __restrict__ x16_groups, int64_t k, int warps_per_row,
                      const __grid_constant__ RopeCacheParams rope) {
  constexpr int kRows = kSlots * R;
  __shared__ float partial[kWarps][kRows][M];
  extern __shared__ uint4 staged_x[];  // kStage > kStageGlobal: x as int16 (staged_x16_bytes)
  static_assert(kWarps * 32 == kStageThreads, "stage_x16 spreads x over 256 threads");
  // Dependents may launch as soon as every block runs (cuda_launch.cuh).
  let_next_kernel_launch();
  int64_t block = 0;
  const int segment_index = block_segment<S>(segments, block);
  const GemvSegment& segment = segments.segment[segment_index];
  const int64_t n = segment.n;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int slot = lane / kLanesPerSlot, column = lane % kLanesPerSlot;
  const int part = warp % warps_per_row;
  const int64_t first = (block * (kWarps / warps_per_row) + warp / warps_per_row) * kRows;
  const bool paired = kRope && rope_pairs(rope, segment_index);
  auto row_of = [&](int local) {
    return paired ? paired_row(first, local, rope.head_dim) : first + local;
  };
  const int64_t row_bytes = split_row_bytes(F, k);
  const uint8_t* rows[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    // Rows past the end read the last row (in bounds) and are not written.
    rows[r] = static_cast<const uint8_t*>(segment.weight) +
              std::min(row_of(slot * R + r), n - 1) * row_bytes;
  }
  // The row this lane writes: its column's (one warp a row) or its lane's (several).
  const int local = warps_per_row == 1 ? slot * R + column : lane;
  const int64_t row = row_of(local);
  float2 angle[M];
  float mine[M];
  const uint4* staged = kStage == kStageGlobal ? x16_groups : staged_x;
  slot_sums<F, M, R, U, kStage>(rows, x, k, warps_per_row, mine, staged, [&] {
    if constexpr (kRope) {
#pragma unroll
      for (int m = 0; m < M; ++m) angle[m] = rope_angle_for(rope, segment_index, row, m);
    }
  });

  const float* bias = segment.bias;
  float* out = segment.out;
  // Stores this lane's totals (the sums plus the bias), rotated and cached with kRope; every
  // lane of the warp calls it (the rotation's shuffle), `writes` says whose row is real.
  auto store = [&](const float(&total)[M], bool writes) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      if constexpr (kRope) {
        const float partner = __shfl_xor_sync(0xffffffff, total[m], 1);
        const float value =
            paired ? rope_rotate(total[m], partner, angle[m], local % 2 == 1) : total[m];
        if (writes) rope_store(rope, segment_index, out, n, row, m, value);
      } else if (writes) {
        out[m * n + row] = total[m];
      }
    }
  };
  if (warps_per_row == 1) {
    const bool writes = column < R && row < n;
    const float b = bias && writes ? bias[row] : 0.0f;
    float total[M];
#pragma unroll
    for (int m = 0; m < M; ++m) total[m] = mine[m] + b;
    store(total, writes);
    return;
  }
  if (column < R) {
#pragma unroll
    for (int m = 0; m < M; ++m) partial[warp][slot * R + column][m] = mine[m];
  }
  __syncthreads();
  if (part != 0) return;  // the same for a whole warp
  const bool writes = lane < kRows && row < n;
  float total[M];
#pragma unroll
  for (int m = 0; m < M; ++m) {
    total[m] = bias && writes ? bias[row] : 0.0f;
    if (writes) {
      for (int q = 0; q < warps_per_row; ++q) total[m] += partial[warp + q][lane][m];
    }
  }
  store(total, writes);
}

// out = act(x gate^T) * (x up^T): a slot's R rows are R / 2 rows of gate and the same rows of up,
// so after the slot's sums lane column c < R / 2 holds gate row c and lane c + R / 2 its up row.
// Each row's sum is the one gemv_split_kernel forms with the same warps_per_row.
template <WeightFormat F, int M, int R, int U, int kMinBlocks, int kStage>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks)
    gemv_split_gated_kernel(const uint8_t* __restrict__ gate, const uint8_t* __restrict__ up,
                            const float* __restrict__ x, const uint4* __restrict__ x16_groups,
                            float* __restrict__ out, uint4* __restrict__ out_x16, int64_t n,
                            int64_t k, int warps_per_row, ActivationKind activation) {
  constexpr int kHalf = R / 2;
  constexpr int kRows = kSlots * R;         // rows of both matrices per warp
  constexpr int kOutputs = kSlots * kHalf;  // output rows per warp
  __shared__ float partial[kWarps][kRows][M];
  // With out_x16 (M = 1; the block's outputs whole groups of 32, n a multiple of 32, as
  // launch_gated arranges) the outputs meet here and warp w stages group w of the block's.
  __shared__ float outputs[kWarps * kOutputs];
  extern __shared__ uint4 staged_x[];  // as in gemv_split_kernel
  let_next_kernel_launch();            // as in gemv_split_kernel
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int slot = lane / kLanesPerSlot, column = lane % kLanesPerSlot;
  const int part = warp % warps_per_row;
  const int64_t first =
      (static_cast<int64_t>(blockIdx.x) * (kWarps / warps_per_row) + warp / warps_per_row) *
      kOutputs;
  const int64_t row_bytes = split_row_bytes(F, k);
  const uint8_t* rows[R];
#pragma unroll
  for (int r = 0; r < kHalf; ++r) {
    const int64_t row = std::min(first + slot * kHalf + r, n - 1);  // past the end: not written
    rows[r] = gate + row * row_bytes;
    rows[kHalf + r] = up + row * row_bytes;
  }
  float mine[M];
  const uint4* staged = kStage == kStageGlobal ? x16_groups : staged_x;
  slot_sums<F, M, R, U, kStage>(rows, x, k, warps_per_row, mine, staged, [] {});

  // Output `local` of the warp's (first + local) is `value`.
  const int64_t block_first = first - (warp / warps_per_row) * kOutputs;
  auto keep = [&](int local, int m, float value) {
    out[m * n + first + local] = value;
    if (out_x16) outputs[first - block_first + local] = value;
  };
  if (warps_per_row == 1) {
    const int local = slot * kHalf + column;
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float u = __shfl_down_sync(0xffffffff, mine[m], kHalf);
      if (column < kHalf && first + local < n) keep(local, m, activate(mine[m], activation) * u);
    }
  } else {
    if (column < R) {
#pragma unroll
      for (int m = 0; m < M; ++m) partial[warp][slot * R + column][m] = mine[m];
    }
    __syncthreads();
    // Lane o < kOutputs adds up output row first + o: gate at slot o / kHalf, column o % kHalf.
    const int gate_local = lane / kHalf * R + lane % kHalf;
    if (part == 0 && lane < kOutputs && first + lane < n) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float g = 0.0f, u = 0.0f;
        for (int q = 0; q < warps_per_row; ++q) {
          g += partial[warp + q][gate_local][m];
          u += partial[warp + q][gate_local + kHalf][m];
        }
        keep(lane, m, activate(g, activation) * u);
      }
    }
  }
  if constexpr (M == 1) {
    if (out_x16) {  // the same for the whole grid
      __syncthreads();
      const int64_t group = block_first / kInt16Group + warp;
      if (warp < kWarps * kOutputs / warps_per_row / kInt16Group && group * kInt16Group < n) {
        stage_lane_x16(outputs[warp * kInt16Group + lane], group, n, out_x16);
      }
    }
  }
}

// Rows per lane (R: each x value loaded serves R rows), pieces per pipeline stage (U: a lane
// keeps R * U loads of 16 bytes in flight) and blocks per multiprocessor the registers must
// allow (more warps hide more latency), as measured best on an H100: 14336x4096 and 4096x14336
// matrices, 1-4 rows of x; with x staged as int16 (kInt16) 2 rows per lane measured best.
template <int kBits, int M, bool kInt16>
struct Tiling {
  static constexpr int R = kInt16 ? 2 : kBits == 8 && M == 1 ? 2 : 4;
  static constexpr int U = 1;
  static constexpr int kMinBlocks = kInt16 ? 2 : kBits == 8 && M == 1 ? 3 : M <= 2 ? 2 : 1;
  static constexpr int kRulePieces = U;  // pieces a stage split_warps_per_row plans for
};

// A grid of at most one block per multiprocessor gains nothing from registers capped for
// kMinBlocks blocks: compiled for one block, the kernel keeps more loads in flight (4-bit, one
// row of x, H100: 4096x4096 10.1 -> 7.8 us, 4096x14336 29.0 -> 22.9 us).
constexpr int kOneWaveBlocks = 1;

// Split rows over warps until about 48 warps per multiprocessor are busy (their loads in flight
// hide the memory latency), while each lane keeps two stages of pieces. `warp_rows`: the warps
// the launch needs with one warp per row tile.
int split_warps_per_row(int64_t warp_rows, int64_t pieces, int stage_pieces) {
  const int64_t wanted = int64_t{48} * multiprocessor_count();
  int warps_per_row = 1;
  while (warps_per_row < kWarps && warp_rows * warps_per_row < wanted &&
         pieces >= int64_t{2} * warps_per_row * kLanesPerSlot * stage_pieces * 2) {
    warps_per_row *= 2;
  }
  return warps_per_row;
}

// One row of x times 4-bit codes takes the integer path (cuda_int16_x.cuh) in launches of up to
// kInt16MostRows rows, where it measured faster: the 128256-row output head of an 8B model (Q4_0,
// H100) took 142 -> 150 us with every block quantizing x, and 145 -> 167 us reading the norm's
// staging. x comes staged by the op that wrote it (x16_groups) or each block quantizes it.
// FLOW2_CUDA_INT16_X=0 turns it off, =all takes any number of rows (to compare), =own has every
// block quantize x even where it comes staged.
constexpr int64_t kInt16MostRows = 32768;
enum class Int16Mode { kOff, kOn, kAll, kOwn };
Int16Mode int16_x_mode() {
  static const Int16Mode mode = [] {
    const char* value = std::getenv("FLOW2_CUDA_INT16_X");
    const std::string text = value ? value : "";
    return text == "0"     ? Int16Mode::kOff
           : text == "all" ? Int16Mode::kAll
           : text == "own" ? Int16Mode::kOwn
                           : Int16Mode::kOn;
  }();
  return mode;
}

// Rows of x that int16 groups cover: whole staging passes of 128 values, at most kInt16MaxK.
bool int16_x_width(int64_t k) {
  return k > 0 && k % 128 == 0 && k <= kInt16MaxK;
}

bool int16_x_shape(WeightFormat format, int64_t m, int64_t k) {
  return int16_x_mode() != Int16Mode::kOff && m == 1 && split_layout(format).code_bits == 4 &&
         int16_x_width(k);
}

// Q4_0 launches on the int16 path with at most two blocks a multiprocessor (an 8B model's o and
// down projections): registers do not limit their blocks, so each lane keeps 4 pieces of its 2
// rows in flight instead of 1 (all of its pieces for rows of 4096), rows split over warps as for
// one (H100, Q4_0 model tg128 336.7 / 336.5 -> 350.2 / 352.6 tok/s; 2 pieces gave 349.9 / 335.4,
// and 2 pieces or 4 rows for every launch 311.9 / 311.5: fewer blocks fit where there are many).
// Not the other 4-bit formats: their wider parameters spill registers at 4 pieces (unmeasured).
struct FewBlocksTiling {
  static constexpr int R = 2;
  static constexpr int U = 4;
  static constexpr int kMinBlocks = 2;
  static constexpr int kRulePieces = 1;
};

// Warps a launch needs with one warp per kRows rows of each segment.
int64_t warp_rows(const GemvSegments& segments, int kRows) {
  int64_t rows = 0;
  for (int s = 0; s < segments.count; ++s) rows += (segments.segment[s].n + kRows - 1) / kRows;
  return rows;
}

bool few_blocks(const GemvSegments& segments) {
  return warp_rows(segments, kSlots * FewBlocksTiling::R) <= int64_t{2} * multiprocessor_count();
}

template <WeightFormat F, int M, int kStage, typename Tile, bool kRope>
void launch_tiled(const GemvSegments& segments, const float* x, const uint4* x16_groups, int64_t k,
                  const RopeCacheParams& rope, cudaStream_t stream) {
  constexpr int R = Tile::R, U = Tile::U;
  constexpr int kRows = kSlots * R;
  const int warps_per_row = split_warps_per_row(warp_rows(segments, kRows),
                                                k / split_piece_elements(F), Tile::kRulePieces);
  const BlockSegments table = assign_blocks(segments, (kWarps / warps_per_row) * kRows);
  const size_t shared = kStage > kStageGlobal ? static_cast<size_t>(staged_x16_bytes(k)) : 0;
  auto launch_for = [&](auto tables) {
    constexpr int S = decltype(tables)::value;
    if (table.blocks <= static_cast<unsigned>(multiprocessor_count())) {  // see kOneWaveBlocks
      launch_kernel(gemv_split_kernel<F, M, R, U, kOneWaveBlocks, S, kStage, kRope>,
                    dim3(table.blocks), kWarps * 32, shared, stream, table, x, x16_groups, k,
                    warps_per_row, rope);
    } else {
      launch_kernel(gemv_split_kernel<F, M, R, U, Tile::kMinBlocks, S, kStage, kRope>,
                    dim3(table.blocks), kWarps * 32, shared, stream, table, x, x16_groups, k,
                    warps_per_row, rope);
    }
  };
  if constexpr (kRope) {
    launch_for(std::integral_constant<int, kGemvMaxSegments>{});  // q, k and v
  } else {
    with_segments(segments, launch_for);
  }
}

template <WeightFormat F, int M, int kStage, bool kRope>
void launch(const GemvSegments& segments, const float* x, const uint4* x16_groups, int64_t k,
            const RopeCacheParams& rope, cudaStream_t stream) {
  if constexpr (kStage > 0 && F == WeightFormat::Q4_0) {
    if (few_blocks(segments)) {
      launch_tiled<F, M, kStage, FewBlocksTiling, kRope>(segments, x, x16_groups, k, rope, stream);
      return;
    }
  }
  using Tile = Tiling<split_layout(F).code_bits, M, (kStage > 0)>;
  launch_tiled<F, M, kStage, Tile, kRope>(segments, x, x16_groups, k, rope, stream);
}

template <WeightFormat F, int M, int kStage>
void launch_gated(const void* gate, const void* up, const float* x, const uint4* x16_groups,
                  float* out, uint4* out_x16, int64_t n, int64_t k, ActivationKind activation,
                  cudaStream_t stream) {
  using Tile = Tiling<split_layout(F).code_bits, M, (kStage > 0)>;
  constexpr int R = Tile::R, U = Tile::U;
  constexpr int kOutputs = kSlots * R / 2;
  int warps_per_row =
      split_warps_per_row((n + kOutputs - 1) / kOutputs, k / split_piece_elements(F), U);
  // Staging the output takes whole groups of 32 outputs a block (an 8B model's gate and up: 2
  // warps a row instead of 4, which measured the same, branch wip/gated-blocks).
  if (out_x16) warps_per_row = std::min(warps_per_row, kWarps * kOutputs / kInt16Group);
  const int64_t rows_per_block = static_cast<int64_t>(kWarps / warps_per_row) * kOutputs;
  const int64_t blocks = (n + rows_per_block - 1) / rows_per_block;
  const dim3 grid(static_cast<unsigned>(blocks));
  const size_t shared = kStage > kStageGlobal ? static_cast<size_t>(staged_x16_bytes(k)) : 0;
  const auto* gate_rows = static_cast<const uint8_t*>(gate);
  const auto* up_rows = static_cast<const uint8_t*>(up);
  if (blocks <= multiprocessor_count()) {  // see kOneWaveBlocks
    launch_kernel(gemv_split_gated_kernel<F, M, R, U, kOneWaveBlocks, kStage>, grid, kWarps * 32,
                  shared, stream, gate_rows, up_rows, x, x16_groups, out, out_x16, n, k,
                  warps_per_row, activation);
  } else {
    launch_kernel(gemv_split_gated_kernel<F, M, R, U, Tile::kMinBlocks, kStage>, grid, kWarps * 32,
                  shared, stream, gate_rows, up_rows, x, x16_groups, out, out_x16, n, k,
                  warps_per_row, activation);
  }
}

// Calls f with std::integral_constant<int, kStage>: kStageGlobal where x comes staged
// (x16_groups), else the float4 loads per thread that stage x as int16 (4, 8 or 16: k up to
// 4096, 8192, 16384), or 0 for the float path, which the kernels take for more rows of x, 8-bit
// codes, or where int16_x_mode says no.
template <WeightFormat F, int M, typename Fn>
void with_int16_choice(int64_t k, int64_t rows, const void* x16_groups, Fn&& f) {
  if constexpr (M == 1 && split_layout(F).code_bits == 4) {
    const Int16Mode mode = int16_x_mode();
    const bool wanted =
        int16_x_shape(F, M, k) && (rows <= kInt16MostRows || mode == Int16Mode::kAll);
    if (wanted && x16_groups && mode != Int16Mode::kOwn) {
      f(std::integral_constant<int, kStageGlobal>{});
      return;
    }
    if (wanted) {
      if (k <= 4096) {
        f(std::integral_constant<int, 4>{});
      } else if (k <= 8192) {
        f(std::integral_constant<int, 8>{});
      } else {
        f(std::integral_constant<int, 16>{});
      }
      return;
    }
  }
  f(std::integral_constant<int, 0>{});
}

// gemv_split and gemv_split_rope: kRope says whether the segments are q, k and v of
// qkv_rope_cache, with `rope` their rotation and cache.
template <bool kRope>
void launch_split(WeightFormat format, const GemvSegments& segments, const float* x,
                  const void* x16_groups, int64_t m, int64_t k, const RopeCacheParams& rope,
                  cudaStream_t stream) {
  const auto* staged = static_cast<const uint4*>(x16_groups);
  with_split_format(format, [&](auto f) {
    with_rows(m, [&](auto rows) {
      constexpr WeightFormat F = decltype(f)::value;
      constexpr int M = decltype(rows)::value;
      with_int16_choice<F, M>(k, total_rows(segments), x16_groups, [&](auto int16) {
        launch<F, M, decltype(int16)::value, kRope>(segments, x, staged, k, rope, stream);
      });
    });
  });
}

}  // namespace

int64_t x16_groups_bytes(int64_t k) {
  return staged_x16_bytes(k);
}

bool takes_x16_groups(int64_t k) {
  const Int16Mode mode = int16_x_mode();
  return int16_x_width(k) && mode != Int16Mode::kOff && mode != Int16Mode::kOwn;
}

void gemv_split(WeightFormat format, const GemvSegments& segments, const float* x,
                const void* x16_groups, int64_t m, int64_t k, cudaStream_t stream) {
  launch_split<false>(format, segments, x, x16_groups, m, k, RopeCacheParams{}, stream);
  check_launch("gemv (split layout)");
}

void gemv_split_rope(WeightFormat format, const GemvSegments& qkv, const float* x,
                     const void* x16_groups, int64_t m, int64_t k, const RopeCacheParams& rope,
                     cudaStream_t stream) {
  launch_split<true>(format, qkv, x, x16_groups, m, k, rope, stream);
  check_launch("gemv with RoPE and cache (split layout)");
}

void gemv_gated_split(WeightFormat format, const void* gate, const void* up, const float* x,
                      const void* x16_groups, float* out, void* out_x16, int64_t m, int64_t n,
                      int64_t k, ActivationKind activation, cudaStream_t stream) {
  const auto* staged = static_cast<const uint4*>(x16_groups);
  auto* out_staged = static_cast<uint4*>(out_x16);
  with_split_format(format, [&](auto f) {
    with_rows(m, [&](auto rows) {
      constexpr WeightFormat F = decltype(f)::value;
      constexpr int M = decltype(rows)::value;
      with_int16_choice<F, M>(k, 2 * n, x16_groups, [&](auto int16) {
        launch_gated<F, M, decltype(int16)::value>(gate, up, x, staged, out, out_staged, n, k,
                                                   activation, stream);
      });
    });
  });
  check_launch("gemv_gated (split layout)");
}

}  // namespace flow2::cuda
