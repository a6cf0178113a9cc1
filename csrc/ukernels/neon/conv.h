// The position-vector convolutions (f32-conv1x1, f32-conv3x3) in NEON intrinsics, for AArch64.
//
// Why not the generic vector code: GCC turns its per-output weight broadcasts into one register
// per weight (ld1r / ldr s), so an [MR x NR] tile sized for one broadcast register needs more than
// the 32 vector registers and spills; its ReLU becomes fcmgt + and. Here the MR weights of a step
// are loaded as whole q-registers (ldr q: 4 weights each) and used by lane-indexed FMLA
// (fmla v.4s, v.4s, v.s[i]), as onnxruntime's MLAS and XNNPACK do, and ReLU is one fmaxnm
// (max(x, 0) with x > 0 ? x : 0's result for -0 and NaN, so outputs match the other ISAs).
//
// Register budget of a tile: MR*NR accumulators + ceil(MR/4) weight registers + the input vectors
// in flight (and, fused, the folded BN's threshold) <= 32. The tile shape per core class comes from
// neon_tiles() (ukernels/config.h); packing and running read the same choice.
#pragma once

#if !defined(__aarch64__)
#error "ukernels/neon/conv.h is for AArch64"
#endif

#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "ukernels/config.h"
#include "ukernels/isa.h"
#include "ukernels/ukernels.h"

namespace cdops {
namespace neon {
namespace {

constexpr int kRegs = 32;
// The fused 1x1 runs a whole group of up to this many outputs as one tile (the table says so to
// the plan, which decides what is fused).
constexpr int kMaxMr = isa_params::neon.mrf_max;
// The largest tile of the unfused kernels any core class uses (NeonTiles::mr_max_*).
constexpr int kMaxMrPlain = 8;

// Position vectors per tile for MR outputs: accumulators + weights + `extra` live registers.
constexpr int nr_for(int mr, int extra, int cap) {
  int n = (kRegs - (mr + 3) / 4 - extra) / mr;
  return n < 1 ? 1 : (n > cap ? cap : n);
}

// Outputs per register tile for M outputs of a 1x1 (taps 1) or 3x3 on this core class: M when it
// fits, else a divisor of M that fills whole weight registers (the class's largest, then 4), else
// the largest divisor in [3, largest], else the largest (the last tile smaller).
inline int mr_for(int M, int taps, bool fused, const NeonTiles& t) {
  const int top = taps == 1 ? t.mr_max_1x1 : t.mr_max_3x3;
  if (M <= top || (fused && M <= kMaxMr)) return M;
  if (M % top == 0) return top;
  if (top > 4 && M % 4 == 0) return 4;
  for (int d = top; d >= 3; --d)
    if (M % d == 0) return d;
  return top;
}

// The MR weights of one step, as q-registers (4 weights each), then a d-register (2) and/or one
// scalar for the rest; fma(acc, x, i) multiplies x by weight i.
template <int MR>
struct Weights {
  static constexpr int kQ = MR / 4, kRem = MR % 4;
  float32x4_t q[kQ > 0 ? kQ : 1];
  float32x2_t d;
  float s;
  __attribute__((always_inline)) inline void load(const float* w) {
    _Pragma("GCC unroll 16") for (int i = 0; i < kQ; ++i) q[i] = vld1q_f32(w + 4 * i);
    if constexpr (kRem >= 2) d = vld1_f32(w + 4 * kQ);
    if constexpr (kRem == 1 || kRem == 3) s = w[MR - 1];
  }
  template <int I>
  __attribute__((always_inline)) inline float32x4_t fma(float32x4_t acc, float32x4_t x) const {
    if constexpr (I < 4 * kQ) {
      return vfmaq_laneq_f32(acc, x, q[I / 4], I % 4);
    } else if constexpr (kRem >= 2 && I < 4 * kQ + 2) {
      return vfmaq_lane_f32(acc, x, d, I - 4 * kQ);
    } else {
      return vfmaq_n_f32(acc, x, s);
    }
  }
};

template <int MR, int NR, int I = 0>
__attribute__((always_inline)) inline void fma_row(float32x4_t (&acc)[MR][NR], int j, float32x4_t x, const Weights<MR>& w) {
  if constexpr (I < MR) {
    acc[I][j] = w.template fma<I>(acc[I][j], x);
    fma_row<MR, NR, I + 1>(acc, j, x, w);
  }
}

inline float32x4_t relu(float32x4_t v) { return vmaxnmq_f32(v, vdupq_n_f32(0.0f)); }

// Broadcast vectors a call prepares once on its stack, so that a tile starts its accumulators and
// feeds its fused BN with plain `ldr q` loads: dup, mov and ld1r each take an FP pipe slot (half an
// FMLA on cortex-a72, a whole one on neoverse-n1, llvm-mca), ldr q a load slot only. Each
// accumulator gets its own copy of its bias (a shared one becomes one load + movs: fmla overwrites
// its accumulator); the fused BN's threshold is one copy per input (fmaxnm / fminnm keep operands).
constexpr int kThreshVecs = 256;  // fused: inputs per pass (4 KB)

// One pass of a tile over inputs [k0, k0 + nk): from the bias (first pass) or from the partial sums
// in out (later passes: a fused 1x1 whose inputs do not fit kThreshVecs runs in several passes; each
// stores its float sums and the next reloads them: the same additions in the same order).
struct Pass {
  const float* w;            // packed weights of the tile at input k0
  int k0, nk;
  int nmax;                  // fused: the pass's first nmax inputs clamp with max, the rest with min
  const float32x4_t* bias;   // [MR][S] copies of the outputs' biases, or null: start from out
  const float32x4_t* thresh; // fused: [nk] broadcast thresholds of inputs k0..
  bool last;                 // apply relu and mask, as the arguments say
};

template <int MR, int NR, bool RELU, bool MASK>
__attribute__((always_inline)) inline void store_tile(float32x4_t (&acc)[MR][NR], float* o, std::ptrdiff_t os, const uint32_t* mask) {
  // made here for each tile: hoisted out of the caller's loop over tiles it would hold a register
  // through the reduction, and the 4x6 3x3 tile spills
  float32x4_t zero = vdupq_n_f32(0.0f);
  asm volatile("" : "+w"(zero));
  uint32x4_t mk[NR];
  _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) mk[j] = MASK ? vld1q_u32(mask + 4 * j) : vdupq_n_u32(0);
  // an output's vectors one after another: neighbouring stores pair into stp q (one FP pipe slot per
  // vector on neoverse-n1 in llvm-mca, against two for a lone str q)
  _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i) {
    // the output's own base register (else GCC keeps an offset register per store, spills them and
    // pairs none)
    float* oi = o + i * os;
    asm volatile("" : "+r"(oi));
    _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) {
      float32x4_t v = acc[i][j];
      if constexpr (RELU) v = vmaxnmq_f32(v, zero);
      if constexpr (MASK) v = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), mk[j]));
      vst1q_f32(oi + 4 * j, v);
    }
  }
}

// True when the n mask words from m (n % 4 == 0) are all set, so a tile's stores need no `and`:
// integer loads and ANDs, off the FP pipes the masking would take (a pad column falls in about one
// tile in five of a 112x112, 56x56 or 28x28 image).
__attribute__((always_inline)) inline bool mask_all_set(const uint32_t* m, int n) {
  uint64_t all = ~uint64_t{0};
  for (int i = 0; i < n; i += 2) {
    uint64_t w;
    std::memcpy(&w, m + i, sizeof w);
    all &= w;
  }
  return all == ~uint64_t{0};
}

// nt [MR outputs x NR position vectors] tiles side by side from position i0, each over one pass of
// the reduction; S: the copies per broadcast vector in the pass's buffers (the full tile's NR).
// Not inlined into its caller, which fills those buffers: inlined, GCC forwards the stores and
// copies registers again. Several tiles per call: one frame and one address set-up for all of them
// (a fused 1x1 with 2-5 inputs spent as much on those as on its FMLA).
// PEEL (fused, first pass): the first input is a max (kPeelMax) or min (kPeelMin) input and goes
// with the bias loads; kNoPeel: the accumulators start from the bias or from out.
enum Peel { kNoPeel, kPeelMax, kPeelMin };
template <int MR, int NR, int S, int TAPS, bool BN, Peel PEEL, bool RELU_LAST = false>
__attribute__((always_inline)) inline void tiles_run(const ConvArgs& a, int m0, std::ptrdiff_t i0, int nt,
                                                     const Pass& p) {
  const std::ptrdiff_t os = a.out_stride;
  // the fused 1x1 only: the 3x3 tiles (long reductions, little to save) spill with the loop around
  if constexpr (!BN) nt = 1;
  for (int t = 0; t < nt; ++t, i0 += 4 * NR) {
  float* o = a.out + m0 * os + i0;
  float32x4_t acc[MR][NR];
  // hidden from GCC each tile, or it hoists the loads out of this loop and copies registers again
  const float32x4_t* bias = p.bias;
  asm volatile("" : "+r"(bias));
  const float* w = p.w;
  const std::ptrdiff_t row = a.row;
  Weights<MR> wr;
  constexpr bool peel = BN && PEEL != kNoPeel;
  if (bias && !peel) {
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i)
      _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) acc[i][j] = bias[i * S + j];
  } else if (!bias) {
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i)
      _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) acc[i][j] = vld1q_f32(o + i * os + 4 * j);
  }
  if constexpr (BN) {
    // 1x1 on picked channels, BN + ReLU folded into the weights: one fmaxnm (inputs [0, nmax)) or
    // fminnm (the rest) per input vector against its threshold
    const float* const* ptrs = a.in_ptrs + p.k0;
    const float32x4_t* th = p.thresh;
    asm volatile("" : "+r"(th));
    int k = 0;
    if constexpr (peel) {
      // the bias loads and the first input's FMLA in one straight block (with 2-10 inputs per
      // group the loads stood alone before the loop: 10-15 cycles a tile, load-bound, on
      // neoverse-n1 in llvm-mca); the same operations in the same order
      const float* src = ptrs[0] + i0;
      const float32x4_t t = th[0];
      wr.load(w);
      float32x4_t x[NR];
      _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) {
        const float32x4_t v = vld1q_f32(src + 4 * j);
        x[j] = PEEL == kPeelMax ? vmaxnmq_f32(v, t) : vminnmq_f32(v, t);
      }
      _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i)
        _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) acc[i][j] = bias[i * S + j];
      _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) fma_row<MR, NR>(acc, j, x[j], wr);
      k = 1;
      w += MR;
    }
    for (; k < p.nmax; ++k, w += MR) {
      const float* src = ptrs[k] + i0;
      const float32x4_t t = th[k];
      wr.load(w);
      _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j)
        fma_row<MR, NR>(acc, j, vmaxnmq_f32(vld1q_f32(src + 4 * j), t), wr);
    }
    for (; k < p.nk; ++k, w += MR) {
      const float* src = ptrs[k] + i0;
      const float32x4_t t = th[k];
      wr.load(w);
      _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j)
        fma_row<MR, NR>(acc, j, vminnmq_f32(vld1q_f32(src + 4 * j), t), wr);
    }
  } else {
    const float* inp = a.in + p.k0 * a.in_stride + i0;
    for (int k = 0; k < p.nk; ++k, inp += a.in_stride, w += TAPS * MR) {
      if constexpr (TAPS == 1) {
        wr.load(w);
        _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) fma_row<MR, NR>(acc, j, vld1q_f32(inp + 4 * j), wr);
      } else {
        // one image row of taps per iteration: unrolling all 9 lets the scheduler hoist loads
        // until the accumulators spill
        const float* x = inp - row - 1;
        const float* wt = w;
        _Pragma("GCC unroll 1") for (int dy = 0; dy < 3; ++dy, x += row, wt += 3 * MR) {
          _Pragma("GCC unroll 3") for (int dx = 0; dx < 3; ++dx) {
            wr.load(wt + dx * MR);
            _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) fma_row<MR, NR>(acc, j, vld1q_f32(x + dx + 4 * j), wr);
          }
        }
      }
    }
  }
  // one branch per tile (the flags are read once, not per stored vector); no masking where the
  // tile holds no pad lane
  if constexpr (RELU_LAST) {
    // the fused 1x1's usual last pass: the flags known per call, one branch here
    if (a.mask && !mask_all_set(a.mask + i0, 4 * NR))
      store_tile<MR, NR, true, true>(acc, o, os, a.mask + i0);
    else
      store_tile<MR, NR, true, false>(acc, o, os, nullptr);
    continue;
  }
  const uint32_t* mask = a.mask && p.last && !mask_all_set(a.mask + i0, 4 * NR) ? a.mask + i0 : nullptr;
  if (!p.last)
    store_tile<MR, NR, false, false>(acc, o, os, nullptr);
  else if (a.relu && mask)
    store_tile<MR, NR, true, true>(acc, o, os, mask);
  else if (mask)
    store_tile<MR, NR, false, true>(acc, o, os, mask);
  else if (a.relu)
    store_tile<MR, NR, true, false>(acc, o, os, nullptr);
  else
    store_tile<MR, NR, false, false>(acc, o, os, nullptr);
  }
}

// The peel's choice made once per call, not per tile (a branch there is a block of its own).
template <int MR, int NR, int S, int TAPS, bool BN>
__attribute__((noinline)) void conv_tiles(const ConvArgs& a, int m0, std::ptrdiff_t i0, int nt, const Pass& p) {
  if constexpr (BN) {
    // the fused 1x1 in one pass with ReLU (every block's): relu and last known at compile time
    if (p.bias && p.nk > 0 && p.last && a.relu) {
      if (p.nmax > 0)
        tiles_run<MR, NR, S, TAPS, BN, kPeelMax, true>(a, m0, i0, nt, p);
      else
        tiles_run<MR, NR, S, TAPS, BN, kPeelMin, true>(a, m0, i0, nt, p);
      return;
    }
    if (p.bias && p.nk > 0) {
      if (p.nmax > 0)
        tiles_run<MR, NR, S, TAPS, BN, kPeelMax>(a, m0, i0, nt, p);
      else
        tiles_run<MR, NR, S, TAPS, BN, kPeelMin>(a, m0, i0, nt, p);
      return;
    }
  }
  tiles_run<MR, NR, S, TAPS, BN, kNoPeel>(a, m0, i0, nt, p);
}

// Remainder of position vectors (fewer than a full NR tile): pick the template by count.
template <int MR, int R, int S, int TAPS, bool BN>
inline void conv_tile_rem(const ConvArgs& a, int m0, std::ptrdiff_t i0, int r, const Pass& p) {
  if constexpr (R > 0) {
    if (r == R)
      conv_tiles<MR, R, S, TAPS, BN>(a, m0, i0, 1, p);
    else
      conv_tile_rem<MR, R - 1, S, TAPS, BN>(a, m0, i0, r, p);
  }
}

// Live registers besides accumulators and weights: the input vectors in flight (two), and for
// the fused gather its threshold and one more input in flight. Position vectors per tile at most 6
// (5 fused): with 7 (4 outputs) GCC's schedule spills (llvm-mca: 82 % of peak on neoverse-n1
// against 99 %).
template <bool BN>
constexpr int kExtra = BN ? 4 : 2;
template <bool BN>
constexpr int kNrCap = BN ? 5 : 6;

template <int MR, int TAPS, bool BN>
void conv_rows(const ConvArgs& a, int m0) {
  constexpr int NR = nr_for(MR, kExtra<BN>, kNrCap<BN>);
  float32x4_t bias[MR * NR];
  _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i) {
    const float32x4_t b = vdupq_n_f32(a.bias ? a.bias[m0 + i] : 0.0f);
    _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) bias[i * NR + j] = b;
  }
  float32x4_t thresh[BN ? kThreshVecs : 1];
  const int per_pass = BN ? kThreshVecs : (a.K > 0 ? a.K : 1);
  const float* w = a.w + static_cast<std::ptrdiff_t>(m0) * a.K * TAPS;
  const int nv = a.nq / 4;
  // one pass at least: a fused 1x1 may have no inputs left after folding (its outputs are the bias)
  for (int k0 = 0; k0 == 0 || k0 < a.K; k0 += per_pass) {
    const int nk = a.K - k0 < per_pass ? a.K - k0 : per_pass;
    int nmax = 0;
    if constexpr (BN) {
      for (int k = 0; k < nk; ++k) thresh[k] = vdupq_n_f32(a.bn_thresh[k0 + k]);
      nmax = a.n_max - k0 < 0 ? 0 : (a.n_max - k0 > nk ? nk : a.n_max - k0);
    }
    const Pass p{w + static_cast<std::ptrdiff_t>(k0) * TAPS * MR, k0, nk, nmax, k0 == 0 ? bias : nullptr, thresh,
                 k0 + nk == a.K};
    const int nt = nv / NR;
    if constexpr (BN) {
      if (nt) conv_tiles<MR, NR, NR, TAPS, BN>(a, m0, 0, nt, p);
    } else {
      for (int t = 0; t < nt; ++t) conv_tiles<MR, NR, NR, TAPS, BN>(a, m0, t * NR * 4, 1, p);
    }
    if (nt * NR < nv) conv_tile_rem<MR, NR - 1, NR, TAPS, BN>(a, m0, nt * NR * 4, nv - nt * NR, p);
  }
}

// One output tile of r outputs (1 <= r <= R): pick the template by count.
template <int R, int TAPS, bool BN>
inline void conv_rows_n(const ConvArgs& a, int m0, int r) {
  if constexpr (R > 0) {
    if (r == R)
      conv_rows<R, TAPS, BN>(a, m0);
    else
      conv_rows_n<R - 1, TAPS, BN>(a, m0, r);
  }
}

template <int TAPS, bool BN>
void conv(const ConvArgs& a) {
  const int mr = mr_for(a.M, TAPS, BN, neon_tiles());
  for (int m0 = 0; m0 < a.M; m0 += mr)
    conv_rows_n<(BN ? kMaxMr : kMaxMrPlain), TAPS, BN>(a, m0, a.M - m0 < mr ? a.M - m0 : mr);
}

// ONNX order [M][K][taps] -> per output tile (mr_for outputs, the last one maybe smaller):
// [k][tap][mr], tile m0 at dst + m0*K*taps.
inline void pack(const float* src, int M, int K, int taps, bool fused, float* dst) {
  const int step = mr_for(M, taps, fused, neon_tiles());
  for (int m0 = 0; m0 < M; m0 += step) {
    const int mr = M - m0 < step ? M - m0 : step;
    float* d = dst + static_cast<std::ptrdiff_t>(m0) * K * taps;
    for (int k = 0; k < K; ++k)
      for (int t = 0; t < taps; ++t)
        for (int i = 0; i < mr; ++i)
          d[(k * taps + t) * mr + i] = src[(static_cast<std::ptrdiff_t>(m0 + i) * K + k) * taps + t];
  }
}

// ---- 3x3 with few outputs: row bands ----------------------------------------------------------
// A tile is R image rows x one position vector of M <= 4 outputs; each input row vector loaded for
// a (k, dx) serves up to 3 output rows. The 9*M weights of an input channel stay in registers for
// its 27*R*M FMLA (lane-indexed, so compile-time indices: static_for).
template <class F, int... Is>
__attribute__((always_inline)) inline void static_for_(F&& f, std::integer_sequence<int, Is...>) {
  (f(std::integral_constant<int, Is>{}), ...);
}
template <int N, class F>
__attribute__((always_inline)) inline void static_for(F&& f) {
  static_for_(f, std::make_integer_sequence<int, N>{});
}

// Rows per tile for M outputs (llvm-mca of the k loop, cortex-a72 / neoverse-n1, % of peak): 1x8
// 99 / 92 and 1x7 98 / 97 with the split accumulators below (1x4 100 / 75: too few FMLA chains for
// the latency; the 112x112 bands have 7-8 rows), 2x6 99.7 / 99.7 (2x8 98 / 96), 3x5 98 / 96,
// 4x4 98 / 96.
constexpr int rows_for(int m) { return m == 1 ? 8 : (m == 2 ? 6 : (m == 3 ? 5 : 4)); }

// The 3 x MR weights of one tap column dx (taps dx, 3 + dx, 6 + dx of pack()'s [tap][mr] order):
// one q-register per tap row, used by lane-indexed FMLA.
template <int MR>
struct TapColumn {
  static_assert(MR >= 2 && MR <= 4, "tap columns of 2-4 outputs");
  // the last tap row's register starts 4 - MR weights early (lanes 4 - MR..3), so as not to read
  // past the packed weights
  static constexpr int kBack = 4 - MR;
  float32x4_t r[3];
  inline void load(const float* w) {
    _Pragma("GCC unroll 3") for (int dy = 0; dy < 3; ++dy) r[dy] = vld1q_f32(w + 3 * dy * MR - (dy == 2 ? kBack : 0));
  }
  template <int DY, int I>
  inline float32x4_t fma(float32x4_t acc, float32x4_t x) const {
    return vfmaq_laneq_f32(acc, x, r[DY], DY == 2 ? I + kBack : I);
  }
};

// ncv tiles side by side from position p0 (one call: the address set-up of a tile cost as much as
// its FMLA with the 4 input channels of the 112x112 blocks). The vectors start at image column 1
// (the pad columns 0 and row-1 are not computed: with W % 4 == 0 no lane is a pad); mask_last: the
// last tile's vector may hold pad lanes, which the mask zeroes.
constexpr int kTapColumnMin = 2;
template <int MR, int R>
__attribute__((noinline)) void rows_tile(const ConvArgs& a, std::ptrdiff_t p0, int ncv, bool mask_last) {
  // the biases as vectors in memory: each accumulator starts from its own ldr q (a dup and R - 1
  // register copies take R FP pipe slots)
  alignas(16) float bias[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int l = 0; l < 4; ++l) bias[i][l] = a.bias ? a.bias[i] : 0.0f;
  for (int cv = 0; cv < ncv; ++cv, p0 += 4) {
  float32x4_t acc[MR][R];
  _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i) {
    _Pragma("GCC unroll 16") for (int r = 0; r < R; ++r) {
      const float* b = bias[i];
      asm volatile("" : "+r"(b));  // a new address to GCC: the loads stay separate
      acc[i][r] = vld1q_f32(b);
    }
  }
  const float* w = a.w;
  const std::ptrdiff_t row = a.row;
  const float* inp = a.in + p0 - row;  // input row above the tile's first row
  if constexpr (MR >= kTapColumnMin) {
    for (int k = 0; k < a.K; ++k, inp += a.in_stride, w += 9 * MR) {
      // one column of taps (dx) per iteration: its R + 2 input row vectors each serve up to 3 output
      // rows. Unrolled over dx (or loaded row by row), GCC renames accumulators and copies them back
      // (llvm-mca on neoverse-n1: 8-20 mov per 144 FMLA in the 4x4, 2x7 and 2x8 tiles).
      const float* src = inp - 1;
      const float* wd = w;
      _Pragma("GCC unroll 1") for (int dx = 0; dx < 3; ++dx, ++src, wd += MR) {
        TapColumn<MR> wr;
        wr.load(wd);
        float32x4_t x[R + 2];
        _Pragma("GCC unroll 16") for (int rr = 0; rr < R + 2; ++rr) x[rr] = vld1q_f32(src + rr * row);
        // dy-major: consecutive FMLA hit different accumulators
        static_for<3>([&](auto dy) __attribute__((always_inline)) {
          static_for<MR>([&](auto i) __attribute__((always_inline)) {
            _Pragma("GCC unroll 16") for (int r = 0; r < R; ++r)
              acc[i()][r] = wr.template fma<dy(), i()>(acc[i()][r], x[r + dy()]);
          });
        });
      }
    }
  } else {
    // 1 output: all 9 taps per iteration (with one column at a time GCC copies registers: 1x12 81 %
    // of the modeled peak on neoverse-n1 against 96 %), the middle tap row into a second set of
    // accumulators, added at the end, so that twice as many FMLA chains hide the latency (the
    // 112x112 bands have 7-8 rows and 4 input channels)
    constexpr bool kSplit = MR == 1;
    float32x4_t acc2[kSplit ? MR : 1][kSplit ? R : 1];
    if constexpr (kSplit) {
      _Pragma("GCC unroll 16") for (int r = 0; r < R; ++r) acc2[0][r] = vdupq_n_f32(0.0f);
    }
    Weights<9 * MR> wr;
    for (int k = 0; k < a.K; ++k, inp += a.in_stride, w += 9 * MR) {
      wr.load(w);
      static_for<3>([&](auto dx) __attribute__((always_inline)) {
        float32x4_t x[R + 2];
        const float* src = inp + (dx() - 1);
        _Pragma("GCC unroll 16") for (int rr = 0; rr < R + 2; ++rr) x[rr] = vld1q_f32(src + rr * row);
        static_for<3>([&](auto dy) __attribute__((always_inline)) {
          static_for<MR>([&](auto i) __attribute__((always_inline)) {
            _Pragma("GCC unroll 16") for (int r = 0; r < R; ++r) {
              if constexpr (kSplit && dy() == 1)
                acc2[i()][r] = wr.template fma<(dy() * 3 + dx()) * MR + i()>(acc2[i()][r], x[r + dy()]);
              else
                acc[i()][r] = wr.template fma<(dy() * 3 + dx()) * MR + i()>(acc[i()][r], x[r + dy()]);
            }
          });
        });
      });
    }
    if constexpr (kSplit) {
      _Pragma("GCC unroll 16") for (int r = 0; r < R; ++r) acc[0][r] = vaddq_f32(acc[0][r], acc2[0][r]);
    }
  }
  // one branch per tile (GCC tests the flag again before each store if it is left inside)
  if (a.relu) {
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i)
      _Pragma("GCC unroll 16") for (int r = 0; r < R; ++r) acc[i][r] = relu(acc[i][r]);
  }
  _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i) {
    float* o = a.out + i * a.out_stride + p0;
    _Pragma("GCC unroll 16") for (int r = 0; r < R; ++r) vst1q_f32(o + r * row, acc[i][r]);
  }
  if (mask_last && cv == ncv - 1) {
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i) {
      float* o = a.out + i * a.out_stride + p0;
      _Pragma("GCC unroll 16") for (int r = 0; r < R; ++r) {
        const uint32x4_t v = vandq_u32(vld1q_u32(reinterpret_cast<const uint32_t*>(o + r * row)),
                                       vld1q_u32(a.mask + p0 + r * row));
        vst1q_f32(o + r * row, vreinterpretq_f32_u32(v));
      }
    }
  }
  }
}

template <int MR, int R>
inline void rows_tile_rem(const ConvArgs& a, std::ptrdiff_t p0, int r, int ncv, bool mask_last) {
  if constexpr (R > 0) {
    if (r == R)
      rows_tile<MR, R>(a, p0, ncv, mask_last);
    else
      rows_tile_rem<MR, R - 1>(a, p0, r, ncv, mask_last);
  }
}

// Rows of the image in bands of at most rows_for(MR), as even as they come (18 rows: 9 + 9, not
// 12 + 6: a short band has fewer accumulators to hide the FMLA latency and reloads more rows).
template <int MR>
void rows_all(const ConvArgs& a) {
  constexpr int R = rows_for(MR);
  const std::ptrdiff_t row = a.row, W = row - 2;
  const int H = static_cast<int>(a.nq / row);
  const int ncv = static_cast<int>((W + 3) / 4);
  const bool tail = a.mask && W % 4 != 0;
  const int nb = (H + R - 1) / R;
  for (int b = 0, r0 = 0; b < nb; ++b) {
    const int nr = H / nb + (b < H % nb ? 1 : 0);
    rows_tile_rem<MR, R>(a, r0 * row + 1, nr, ncv, tail);
    if (a.mask) {  // the pad columns, not computed: zero (as the mask says)
      for (int i = 0; i < a.M; ++i) {
        float* o = a.out + i * a.out_stride + r0 * row;
        for (int r = 0; r < nr; ++r) o[r * row] = o[r * row + row - 1] = 0.0f;
      }
    }
    r0 += nr;
  }
}

// a.nq = H * row (whole rows of row - 2 image columns between a pad column either side: a.mask,
// if set, is zero there); a.M <= 4 (one tile) or a multiple of 4 (tiles of 4), weights packed by
// pack() with taps 9. The pad columns are written zero with a mask and left as they are without.
// Writes may spill up to 2 positions past the last row (into the bottom pad row).
inline void conv3x3_rows(const ConvArgs& a) {
  switch (a.M) {
    case 1: rows_all<1>(a); return;
    case 2: rows_all<2>(a); return;
    case 3: rows_all<3>(a); return;
    case 4: rows_all<4>(a); return;
    default: break;
  }
  // tiles of 4 outputs, packed one after another (pack(): mr_for gives 4 for M % 4 == 0)
  for (int m0 = 0; m0 < a.M; m0 += 4) {
    ConvArgs t = a;
    t.M = 4;
    t.w = a.w + static_cast<std::ptrdiff_t>(m0) * a.K * 9;
    t.bias = a.bias ? a.bias + m0 : nullptr;
    t.out = a.out + m0 * a.out_stride;
    rows_all<4>(t);
  }
}

}  // namespace
}  // namespace neon
}  // namespace cdops
