// The channel-vectorised convolutions (f32-chanvec-conv) in NEON intrinsics, for AArch64: outputs
// along the lanes, pixels in the register tile. Four neighbouring pixels of a tap are one q-register
// load used by lane-indexed FMLA (the generic code loads and broadcasts each pixel on its own).
// The weights' packing and the output-vector tiles are the generic ones (generic/chanvec.h:
// pack_cv, cv_mrv_for), which the including file brings in first.
#pragma once

#if !defined(__aarch64__)
#error "ukernels/neon/chanvec.h is for AArch64"
#endif

#include <arm_neon.h>

#include <cstddef>
#include <utility>

#include "ukernels/ukernels.h"

namespace cdops {
namespace neon {
namespace {

// Pixels per tile for MRV output vectors (MRV*NR accumulators + MRV weights + the pixels in flight).
constexpr int cv_pixels(int mrv) { return mrv == 1 ? 14 : 7; }

template <class F, int... Is>
__attribute__((always_inline)) inline void cv_static_for_(F&& f, std::integer_sequence<int, Is...>) {
  (f(std::integral_constant<int, Is>{}), ...);
}
template <int N, class F>
__attribute__((always_inline)) inline void cv_static_for(F&& f) {
  cv_static_for_(f, std::make_integer_sequence<int, N>{});
}

// acc[v][j0..j0+3] += wv[v] * the four pixels of xq (one per lane).
template <int MRV, int NR>
__attribute__((always_inline)) inline void fma4(float32x4_t (&acc)[MRV][NR], int j0, const float32x4_t (&wv)[MRV],
                                                float32x4_t xq) {
  _Pragma("GCC unroll 4") for (int v = 0; v < MRV; ++v) {
    acc[v][j0 + 0] = vfmaq_laneq_f32(acc[v][j0 + 0], wv[v], xq, 0);
    acc[v][j0 + 1] = vfmaq_laneq_f32(acc[v][j0 + 1], wv[v], xq, 1);
    acc[v][j0 + 2] = vfmaq_laneq_f32(acc[v][j0 + 2], wv[v], xq, 2);
    acc[v][j0 + 3] = vfmaq_laneq_f32(acc[v][j0 + 3], wv[v], xq, 3);
  }
}

// Four pixels' accumulators p[0..3] (one output vector: 4 channels each) stored as 4 channels x 4
// pixels: a 4x4 transpose (8 permutes) and one whole-vector store per channel.
__attribute__((always_inline)) inline void store4(const float32x4_t* p, float* o, std::ptrdiff_t os) {
  const float32x4_t t0 = vtrn1q_f32(p[0], p[1]), t1 = vtrn2q_f32(p[0], p[1]);
  const float32x4_t t2 = vtrn1q_f32(p[2], p[3]), t3 = vtrn2q_f32(p[2], p[3]);
  const float64x2_t d0 = vreinterpretq_f64_f32(t0), d1 = vreinterpretq_f64_f32(t1);
  const float64x2_t d2 = vreinterpretq_f64_f32(t2), d3 = vreinterpretq_f64_f32(t3);
  vst1q_f32(o, vreinterpretq_f32_f64(vtrn1q_f64(d0, d2)));
  vst1q_f32(o + os, vreinterpretq_f32_f64(vtrn1q_f64(d1, d3)));
  vst1q_f32(o + 2 * os, vreinterpretq_f32_f64(vtrn2q_f64(d0, d2)));
  vst1q_f32(o + 3 * os, vreinterpretq_f32_f64(vtrn2q_f64(d1, d3)));
}

// The tiles of nc columns (NR pixels each, from column c0) on every image row, in one call: the
// address set-up of a call costs about as much as a tile's epilogue.
template <int MRV, int NR, int TAPS>
__attribute__((noinline)) void cv_tile(const CvArgs& a, int mv0, int c0, int nc) {
  // rows, then columns (one loop over both divided by nc per tile: an sdiv, about 10 cycles a tile
  // on neoverse-n1 in llvm-mca)
  for (int r = 0; r < a.H; ++r)
  for (int c = 0; c < nc; ++c) {
  const std::ptrdiff_t p0 = r * a.row + c0 + c * NR;
  constexpr int NQ = NR / 4, REM = NR % 4;  // pixels loaded four at a time, then the rest
  constexpr bool kTailQ = NQ > 0 && REM > 0;   // the rest as lanes of the last four pixels' load
  float32x4_t acc[MRV][NR];
  const float* w = a.w + static_cast<std::ptrdiff_t>(mv0) * 4 * a.K * TAPS;
  const float* inp = a.in + p0;
  const std::ptrdiff_t row = a.row;
  // one tap per iteration (a 3x3's taps at offsets off[t] from the input channel's pixel p0): a
  // loop of 3 taps or of 9 leaves GCC renaming accumulators and copying them back (llvm-mca on
  // neoverse-n1: 4 mov per 42 FMLA in the 2x7 tile)
  std::ptrdiff_t off[TAPS];
  for (int t = 0; t < TAPS; ++t) off[t] = TAPS == 1 ? 0 : (t / 3 - 1) * row + (t % 3 - 1);
  // acc += the tap at x, weights w
  auto tap = [&](const float* x, const float* wt) __attribute__((always_inline)) {
    float32x4_t wv[MRV];
    _Pragma("GCC unroll 4") for (int v = 0; v < MRV; ++v) wv[v] = vld1q_f32(wt + v * 4);
    _Pragma("GCC unroll 4") for (int q = 0; q < NQ; ++q) fma4<MRV, NR>(acc, 4 * q, wv, vld1q_f32(x + 4 * q));
    if constexpr (kTailQ) {
      // pixels NR-4..NR-1 in one load (the first 4 - NR%4 lanes are done above): an ld1r per
      // pixel would take an FP pipe slot each (llvm-mca, both cores)
      const float32x4_t xt = vld1q_f32(x + NR - 4);
      cv_static_for<REM>([&](auto l) __attribute__((always_inline)) {
        _Pragma("GCC unroll 4") for (int v = 0; v < MRV; ++v)
          acc[v][4 * NQ + l()] = vfmaq_laneq_f32(acc[v][4 * NQ + l()], wv[v], xt, 4 - REM + l());
      });
    } else {
      _Pragma("GCC unroll 4") for (int j = 4 * NQ; j < NR; ++j) {
        const float32x4_t xb = vld1q_dup_f32(x + j);
        _Pragma("GCC unroll 4") for (int v = 0; v < MRV; ++v) acc[v][j] = vfmaq_f32(acc[v][j], wv[v], xb);
      }
    }
  };
  // each accumulator from its own load of the bias (one load and NR - 1 register copies would
  // take NR - 1 FP pipe slots; a load takes a load slot), in one block with the first tap's FMLA
  // (alone before the loop the loads made a load-bound block of their own: about 13 cycles a
  // tile on neoverse-n1 in llvm-mca); the same operations in the same order
  static const float kZeros[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  auto load_bias = [&]() __attribute__((always_inline)) {
    _Pragma("GCC unroll 4") for (int v = 0; v < MRV; ++v) {
      const float* b = a.bias ? a.bias + (mv0 + v) * 4 : kZeros;
      _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) {
        asm volatile("" : "+r"(b));  // a new address to GCC: the loads stay separate
        acc[v][j] = vld1q_f32(b);
      }
    }
  };
  if (a.K > 0) {  // the loads after the branch, so that they share the first tap's block
    load_bias();
    tap(inp + off[0], w);
    w += MRV * 4;
    if (TAPS == 1) inp += a.in_stride;
  } else {
    load_bias();
  }
  if constexpr (TAPS == 1) {
    for (int k = 1; k < a.K; ++k, inp += a.in_stride, w += MRV * 4) tap(inp, w);
  } else {
    // taps outer, input channels inner: the channel loop is the long one (K = 32-64 in the blocks
    // that use it), so the outer loop's own block runs 9 times a tile instead of K (1.4 cycles each
    // on neoverse-n1 in llvm-mca). The sums run in another order than the other ISAs' (within
    // rounding of them).
    const float* const in0 = inp;
    const float* const w0 = w - MRV * 4;  // the packed weights of channel 0, tap 0
    constexpr std::ptrdiff_t kWStep = TAPS * MRV * 4;
    for (int t = 0; t < TAPS; ++t) {
      const int k0 = t == 0 ? 1 : 0;
      const float* x = in0 + off[t] + k0 * a.in_stride;
      const float* wt = w0 + t * MRV * 4 + k0 * kWStep;
      _Pragma("GCC unroll 1") for (int k = k0; k < a.K; ++k, x += a.in_stride, wt += kWStep) tap(x, wt);
    }
  }
  const float32x4_t zero = vdupq_n_f32(0.0f);
  const std::ptrdiff_t os = a.out_stride;
  _Pragma("GCC unroll 4") for (int v = 0; v < MRV; ++v) {
    float* o = a.out + static_cast<std::ptrdiff_t>(mv0 + v) * 4 * os + p0;
    if (a.relu) {
      _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) acc[v][j] = vmaxnmq_f32(acc[v][j], zero);
    }
    // four pixels at a time: a 4x4 transpose (pixels x channels -> channels x pixels, 8 permutes)
    // and one whole-vector store per channel, instead of 16 lane stores; the last NR % 4 pixels
    // as pixels NR-4..NR-1 (the first of them stored twice, with the same values)
    _Pragma("GCC unroll 4") for (int q = 0; q < NQ; ++q) store4(&acc[v][4 * q], o + 4 * q, os);
    if constexpr (kTailQ && REM == 3) {
      // the last 3 pixels: two by a 2x2 transpose per channel pair (two permutes, four 8-byte
      // stores), the third by lane stores: 10 FP pipe slots on neoverse-n1 in llvm-mca, against 16
      // for a 4x4 transpose of pixels NR-4..NR-1 (8 permutes and 4 vector stores)
      const int j = 4 * NQ;
      const float32x4_t t0 = vtrn1q_f32(acc[v][j], acc[v][j + 1]), t1 = vtrn2q_f32(acc[v][j], acc[v][j + 1]);
      vst1_f32(o + j, vget_low_f32(t0));
      vst1_f32(o + os + j, vget_low_f32(t1));
      vst1_f32(o + 2 * os + j, vget_high_f32(t0));
      vst1_f32(o + 3 * os + j, vget_high_f32(t1));
      vst1q_lane_f32(o + j + 2, acc[v][j + 2], 0);
      vst1q_lane_f32(o + os + j + 2, acc[v][j + 2], 1);
      vst1q_lane_f32(o + 2 * os + j + 2, acc[v][j + 2], 2);
      vst1q_lane_f32(o + 3 * os + j + 2, acc[v][j + 2], 3);
    } else if constexpr (kTailQ) {
      store4(&acc[v][NR - 4], o + NR - 4, os);
    } else {
      _Pragma("GCC unroll 4") for (int j = 4 * NQ; j < NR; ++j) {
        const float32x4_t r = acc[v][j];
        vst1q_lane_f32(o + j, r, 0);
        vst1q_lane_f32(o + os + j, r, 1);
        vst1q_lane_f32(o + 2 * os + j, r, 2);
        vst1q_lane_f32(o + 3 * os + j, r, 3);
      }
    }
  }
  }
}

template <int MRV, int R, int TAPS>
inline void cv_tile_rem(const CvArgs& a, int mv0, int c0, int r) {
  if constexpr (R > 0) {
    if (r == R)
      cv_tile<MRV, R, TAPS>(a, mv0, c0, 1);
    else
      cv_tile_rem<MRV, R - 1, TAPS>(a, mv0, c0, r);
  }
}

template <int MRV, int TAPS>
void cv_rows(const CvArgs& a, int mv0) {
  constexpr int NR = cv_pixels(MRV);
  const int nc = a.W / NR, rem = a.W - nc * NR;
  if (nc) cv_tile<MRV, NR, TAPS>(a, mv0, 0, nc);
  if (rem) cv_tile_rem<MRV, NR - 1, TAPS>(a, mv0, nc * NR, rem);
}

// out = act(conv(in)) for M % 4 == 0 outputs, weights packed by the generic pack_cv (tiles of
// cv_mrv_for(M / 4) output vectors, at most CV_MRV_MAX).
template <int TAPS>
inline void conv_cv(const CvArgs& a) {
  static_assert(CV_MRV_MAX == 3, "the NEON channel-vector tiles cover 1-3 output vectors");
  const int Mv = a.M / 4;
  const int step = cv_mrv_for(Mv);
  for (int mv0 = 0; mv0 < Mv; mv0 += step) {
    switch (Mv - mv0 < step ? Mv - mv0 : step) {
      case 1: cv_rows<1, TAPS>(a, mv0); break;
      case 2: cv_rows<2, TAPS>(a, mv0); break;
      default: cv_rows<3, TAPS>(a, mv0); break;
    }
  }
}

}  // namespace
}  // namespace neon
}  // namespace cdops
