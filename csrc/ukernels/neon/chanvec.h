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

#include "ukernels/ukernels.h"

namespace cdops {
namespace neon {
namespace {

// Pixels per tile for MRV output vectors (MRV*NR accumulators + MRV weights + the pixels in flight).
constexpr int cv_pixels(int mrv) { return mrv == 1 ? 14 : 7; }

template <int MRV, int NR, int TAPS>
inline void cv_tile(const CvArgs& a, int mv0, std::ptrdiff_t p0) {
  constexpr int NQ = NR / 4;  // pixels loaded four at a time; the rest one by one
  float32x4_t acc[MRV][NR];
  _Pragma("GCC unroll 4") for (int v = 0; v < MRV; ++v) {
    const float32x4_t b = a.bias ? vld1q_f32(a.bias + (mv0 + v) * 4) : vdupq_n_f32(0.0f);
    _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) acc[v][j] = b;
  }
  const float* w = a.w + static_cast<std::ptrdiff_t>(mv0) * 4 * a.K * TAPS;
  const float* inp = a.in + p0;
  const std::ptrdiff_t row = a.row;
  for (int k = 0; k < a.K; ++k, inp += a.in_stride) {
    const float* x = TAPS == 1 ? inp : inp - row - 1;
    _Pragma("GCC unroll 1") for (int dy = 0; dy < (TAPS == 1 ? 1 : 3); ++dy, x += row) {
      _Pragma("GCC unroll 3") for (int dx = 0; dx < (TAPS == 1 ? 1 : 3); ++dx, w += MRV * 4) {
        float32x4_t wv[MRV];
        _Pragma("GCC unroll 4") for (int v = 0; v < MRV; ++v) wv[v] = vld1q_f32(w + v * 4);
        _Pragma("GCC unroll 4") for (int q = 0; q < NQ; ++q) {
          const float32x4_t xq = vld1q_f32(x + dx + 4 * q);
          _Pragma("GCC unroll 4") for (int v = 0; v < MRV; ++v) {
            acc[v][4 * q + 0] = vfmaq_laneq_f32(acc[v][4 * q + 0], wv[v], xq, 0);
            acc[v][4 * q + 1] = vfmaq_laneq_f32(acc[v][4 * q + 1], wv[v], xq, 1);
            acc[v][4 * q + 2] = vfmaq_laneq_f32(acc[v][4 * q + 2], wv[v], xq, 2);
            acc[v][4 * q + 3] = vfmaq_laneq_f32(acc[v][4 * q + 3], wv[v], xq, 3);
          }
        }
        _Pragma("GCC unroll 4") for (int j = 4 * NQ; j < NR; ++j) {
          const float32x4_t xb = vld1q_dup_f32(x + dx + j);
          _Pragma("GCC unroll 4") for (int v = 0; v < MRV; ++v) acc[v][j] = vfmaq_f32(acc[v][j], wv[v], xb);
        }
      }
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
    // and one whole-vector store per channel, instead of 16 lane stores
    _Pragma("GCC unroll 4") for (int q = 0; q < NQ; ++q) {
      const float32x4_t* p = &acc[v][4 * q];
      const float32x4_t t0 = vtrn1q_f32(p[0], p[1]), t1 = vtrn2q_f32(p[0], p[1]);
      const float32x4_t t2 = vtrn1q_f32(p[2], p[3]), t3 = vtrn2q_f32(p[2], p[3]);
      const float64x2_t d0 = vreinterpretq_f64_f32(t0), d1 = vreinterpretq_f64_f32(t1);
      const float64x2_t d2 = vreinterpretq_f64_f32(t2), d3 = vreinterpretq_f64_f32(t3);
      vst1q_f32(o + 4 * q, vreinterpretq_f32_f64(vtrn1q_f64(d0, d2)));
      vst1q_f32(o + os + 4 * q, vreinterpretq_f32_f64(vtrn1q_f64(d1, d3)));
      vst1q_f32(o + 2 * os + 4 * q, vreinterpretq_f32_f64(vtrn2q_f64(d0, d2)));
      vst1q_f32(o + 3 * os + 4 * q, vreinterpretq_f32_f64(vtrn2q_f64(d1, d3)));
    }
    _Pragma("GCC unroll 4") for (int j = 4 * NQ; j < NR; ++j) {
      const float32x4_t r = acc[v][j];
      vst1q_lane_f32(o + j, r, 0);
      vst1q_lane_f32(o + a.out_stride + j, r, 1);
      vst1q_lane_f32(o + 2 * a.out_stride + j, r, 2);
      vst1q_lane_f32(o + 3 * a.out_stride + j, r, 3);
    }
  }
}

template <int MRV, int R, int TAPS>
inline void cv_tile_rem(const CvArgs& a, int mv0, std::ptrdiff_t p0, int r) {
  if constexpr (R > 0) {
    if (r == R)
      cv_tile<MRV, R, TAPS>(a, mv0, p0);
    else
      cv_tile_rem<MRV, R - 1, TAPS>(a, mv0, p0, r);
  }
}

template <int MRV, int TAPS>
void cv_rows(const CvArgs& a, int mv0) {
  constexpr int NR = cv_pixels(MRV);
  for (int r = 0; r < a.H; ++r) {
    const std::ptrdiff_t base = r * a.row;
    int c = 0;
    for (; c + NR <= a.W; c += NR) cv_tile<MRV, NR, TAPS>(a, mv0, base + c);
    if (c < a.W) cv_tile_rem<MRV, NR - 1, TAPS>(a, mv0, base + c, a.W - c);
  }
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
