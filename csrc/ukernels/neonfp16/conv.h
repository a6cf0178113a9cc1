// The fp16 position-vector convolutions (f16-conv1x1, f16-conv3x3), the BN+ReLU gather and the
// conversions, in NEON FP16 intrinsics (ARMv8.2 FP16 arithmetic: -march=armv8.2-a+fp16).
//
// The fp32 NEON kernels' scheme (ukernels/neon/conv.h) at 8 halves per q-register: the MR weights
// of a step are loaded as whole q-registers (8 weights each) and used by lane-indexed FMLA
// (fmla v.8h, v.8h, v.h[i]); the sums are accumulated in fp16 (that is what doubles the MACs per
// instruction); ReLU is one fmaxnm (max(x, 0) as the fp32 kernels compute it, for -0 and NaN too).
// A weight register may read up to 7 halves past the tile's last weight (lanes never used):
// packed buffers carry kF16WeightSlack halves after their end.
//
// Register budget of a tile: MR*NR accumulators + ceil(MR/8) weight registers + the input vectors
// in flight (and, fused, the BN scale/shift/zero) <= 32.
#pragma once

#if !defined(__aarch64__) || !defined(__ARM_FEATURE_FP16_VECTOR_ARITHMETIC)
#error "ukernels/neonfp16/conv.h is for AArch64 with FP16 arithmetic (-march=armv8.2-a+fp16)"
#endif

#include <arm_neon.h>

#include <cstddef>

#include "ukernels/ukernels.h"

namespace cdops {
namespace neonfp16 {
namespace {

constexpr int kRegs = 32;
constexpr int kVl = 8;
// The fused 1x1 runs a whole group of up to this many outputs as one tile (the table's mrf_max).
constexpr int kMaxMrFused = 16;
// The largest tile of the unfused 1x1 and of the 3x3.
constexpr int kMaxMr1x1 = 8;
constexpr int kMaxMr3x3 = 4;

inline const float16_t* hp(const half_t* p) { return reinterpret_cast<const float16_t*>(p); }
inline float16_t* hp(half_t* p) { return reinterpret_cast<float16_t*>(p); }

// Position vectors per tile for MR outputs: accumulators + weights + `extra` live registers.
constexpr int nr_for(int mr, int extra, int cap) {
  int n = (kRegs - (mr + 7) / 8 - extra) / mr;
  return n < 1 ? 1 : (n > cap ? cap : n);
}

// Outputs per register tile for M outputs: M when it fits, else a divisor of M (the largest tile,
// then 4, then the largest in [3, top]), else the largest (the last tile smaller).
inline int mr_for(int M, int taps, bool fused) {
  const int top = taps == 1 ? kMaxMr1x1 : kMaxMr3x3;
  if (M <= top || (fused && M <= kMaxMrFused)) return M;
  if (M % top == 0) return top;
  if (top > 4 && M % 4 == 0) return 4;
  for (int d = top; d >= 3; --d)
    if (M % d == 0) return d;
  return top;
}

// acc + x * w[L], one lane-indexed FMLA. Not vfmaq_laneq_f16: GCC 12 turns that into a dup of
// the lane plus a vector FMLA whenever the lane is used more than once (every tile here), which
// costs an extra register per weight and spills the tile (read in the assembly). The "x"
// constraint is the by-element form's register limit (v0-v15 for halves).
template <int L>
__attribute__((always_inline)) inline float16x8_t fma_lane(float16x8_t acc, float16x8_t x, float16x8_t w) {
  asm("fmla %0.8h, %1.8h, %2.h[%c3]" : "+w"(acc) : "w"(x), "x"(w), "n"(L));
  return acc;
}

// The MR weights of one step as ceil(MR/8) q-registers; fma<I>(acc, x) adds x times weight I.
template <int MR>
struct Weights {
  static constexpr int kQ = (MR + 7) / 8;
  float16x8_t q[kQ];
  inline void load(const float16_t* w) {
    _Pragma("GCC unroll 4") for (int i = 0; i < kQ; ++i) q[i] = vld1q_f16(w + 8 * i);
  }
  template <int I>
  inline float16x8_t fma(float16x8_t acc, float16x8_t x) const {
    return fma_lane<I % 8>(acc, x, q[I / 8]);
  }
};

template <int MR, int NR, int I = 0>
inline void fma_row(float16x8_t (&acc)[MR][NR], int j, float16x8_t x, const Weights<MR>& w) {
  if constexpr (I < MR) {
    acc[I][j] = w.template fma<I>(acc[I][j], x);
    fma_row<MR, NR, I + 1>(acc, j, x, w);
  }
}

inline float16x8_t relu(float16x8_t v) { return vmaxnmq_f16(v, vdupq_n_f16(0)); }

// One [MR outputs x NR position vectors] tile over the whole reduction.
template <int MR, int NR, int TAPS, bool BN>
inline void conv_tile(const F16ConvArgs& a, int m0, std::ptrdiff_t i0) {
  float16x8_t acc[MR][NR];
  _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i) {
    const float16x8_t b = a.bias ? vld1q_dup_f16(hp(a.bias) + m0 + i) : vdupq_n_f16(0);
    _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) acc[i][j] = b;
  }
  const float16_t* inp = hp(a.in) + i0;
  const float16_t* w = hp(a.w) + static_cast<std::ptrdiff_t>(m0) * a.K * TAPS;
  const std::ptrdiff_t row = a.row;
  Weights<MR> wr;
  for (int k = 0; k < a.K; ++k, inp += a.in_stride, w += TAPS * MR) {
    if constexpr (BN) {
      // 1x1 on picked channels with BN + ReLU applied on the fly
      const float16_t* src = hp(a.in_ptrs[k]) + i0;
      const float16x8_t sc = vld1q_dup_f16(hp(a.bn_scale) + k), sh = vld1q_dup_f16(hp(a.bn_shift) + k);
      wr.load(w);
      _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j)
        fma_row<MR, NR>(acc, j, relu(vfmaq_f16(sh, vld1q_f16(src + kVl * j), sc)), wr);
    } else if constexpr (TAPS == 1) {
      wr.load(w);
      _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) fma_row<MR, NR>(acc, j, vld1q_f16(inp + kVl * j), wr);
    } else {
      // one image row of taps per iteration (as the fp32 kernel: unrolling all 9 lets the
      // scheduler hoist loads until the accumulators spill)
      const float16_t* x = inp - row - 1;
      const float16_t* wt = w;
      _Pragma("GCC unroll 1") for (int dy = 0; dy < 3; ++dy, x += row, wt += 3 * MR) {
        _Pragma("GCC unroll 3") for (int dx = 0; dx < 3; ++dx) {
          wr.load(wt + dx * MR);
          _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j)
            fma_row<MR, NR>(acc, j, vld1q_f16(x + dx + kVl * j), wr);
        }
      }
    }
  }
  _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i) {
    float16_t* o = hp(a.out) + (m0 + i) * a.out_stride + i0;
    _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) {
      float16x8_t v = acc[i][j];
      if (a.relu) v = relu(v);
      if (a.mask) v = vreinterpretq_f16_u16(vandq_u16(vreinterpretq_u16_f16(v), vld1q_u16(a.mask + i0 + kVl * j)));
      vst1q_f16(o + kVl * j, v);
    }
  }
}

// Remainder of position vectors (fewer than a full NR tile): pick the template by count.
template <int MR, int R, int TAPS, bool BN>
inline void conv_tile_rem(const F16ConvArgs& a, int m0, std::ptrdiff_t i0, int r) {
  if constexpr (R > 0) {
    if (r == R)
      conv_tile<MR, R, TAPS, BN>(a, m0, i0);
    else
      conv_tile_rem<MR, R - 1, TAPS, BN>(a, m0, i0, r);
  }
}

// Live registers besides accumulators and weights: the input vectors in flight (two), and for the
// fused gather its scale, shift, zero and the raw input.
template <bool BN>
constexpr int kExtra = BN ? 6 : 2;
// At most 6 position vectors (5 fused); 8 for a single output, whose 3x3 otherwise waits on its
// accumulators (3 dependent FMLA per accumulator and row of taps: 6 accumulators model at 75 % of
// peak on neoverse-n1, 8 at 88 %, then bound by the loads).
template <bool BN>
constexpr int nr_cap(int mr) {
  return BN ? 5 : (mr == 1 ? 8 : 6);
}

// The fused tiles of 5 and 6 outputs spilled at 25 and 24 accumulators (GCC's schedule keeps more
// inputs in flight than kExtra counts): at most 21 accumulators unless the weights fill whole
// halves of a register.
constexpr int nr_fused(int mr) {
  int n = nr_for(mr, kExtra<true>, nr_cap<true>(mr));
  while (n > 1 && mr * n > 21 && mr % 4 != 0) --n;
  return n;
}

template <int MR, int TAPS, bool BN>
void conv_rows(const F16ConvArgs& a, int m0) {
  constexpr int NR = BN ? nr_fused(MR) : nr_for(MR, kExtra<BN>, nr_cap<BN>(MR));
  const int nv = a.nq / kVl;
  int j = 0;
  for (; j + NR <= nv; j += NR) conv_tile<MR, NR, TAPS, BN>(a, m0, j * kVl);
  if (j < nv) conv_tile_rem<MR, NR - 1, TAPS, BN>(a, m0, j * kVl, nv - j);
}

template <int R, int TAPS, bool BN>
inline void conv_rows_n(const F16ConvArgs& a, int m0, int r) {
  if constexpr (R > 0) {
    if (r == R)
      conv_rows<R, TAPS, BN>(a, m0);
    else
      conv_rows_n<R - 1, TAPS, BN>(a, m0, r);
  }
}

template <int TAPS, bool BN>
void conv(const F16ConvArgs& a) {
  const int mr = mr_for(a.M, TAPS, BN);
  constexpr int kTop = BN ? kMaxMrFused : (TAPS == 1 ? kMaxMr1x1 : kMaxMr3x3);
  for (int m0 = 0; m0 < a.M; m0 += mr) conv_rows_n<kTop, TAPS, BN>(a, m0, a.M - m0 < mr ? a.M - m0 : mr);
}

// ONNX order [M][K][taps] floats -> per output tile (mr_for outputs, the last one maybe smaller):
// [k][tap][mr] halves, tile m0 at dst + m0*K*taps.
inline void pack(const float* src, int M, int K, int taps, bool fused, half_t* dst_bits) {
  float16_t* dst = hp(dst_bits);
  const int step = mr_for(M, taps, fused);
  for (int m0 = 0; m0 < M; m0 += step) {
    const int mr = M - m0 < step ? M - m0 : step;
    float16_t* d = dst + static_cast<std::ptrdiff_t>(m0) * K * taps;
    for (int k = 0; k < K; ++k)
      for (int t = 0; t < taps; ++t)
        for (int i = 0; i < mr; ++i)
          d[(k * taps + t) * mr + i] =
              static_cast<float16_t>(src[(static_cast<std::ptrdiff_t>(m0 + i) * K + k) * taps + t]);
  }
}

}  // namespace
}  // namespace neonfp16
}  // namespace cdops
