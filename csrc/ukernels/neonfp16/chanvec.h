// The fp16 channel-vectorised convolutions (f16-chanvec-conv) in NEON FP16 intrinsics: outputs
// along the 8 lanes, pixels in the register tile, for small images where position vectors would be
// mostly padding. The fp32 NEON scheme (ukernels/neon/chanvec.h) at 8 halves per register: eight
// neighbouring pixels of a tap are one q-register load used by lane-indexed FMLA, the rest of a
// tile's pixels one broadcast load each; sums accumulated in fp16.
#pragma once

#if !defined(__aarch64__) || !defined(__ARM_FEATURE_FP16_VECTOR_ARITHMETIC)
#error "ukernels/neonfp16/chanvec.h is for AArch64 with FP16 arithmetic (-march=armv8.2-a+fp16)"
#endif

#include <arm_neon.h>

#include <cstddef>

#include "ukernels/neonfp16/conv.h"
#include "ukernels/ukernels.h"

namespace cdops {
namespace neonfp16 {
namespace {

constexpr int kCvMrvMax = 3;  // output vectors (of 8) per tile
// Pixels per tile for MRV output vectors: MRV*NR accumulators + MRV weights + the pixels in flight
// (3 x 7 and 3 x 8 spilled: GCC hoists the broadcast pixel loads).
constexpr int cv_pixels(int mrv) { return mrv == 1 ? 16 : (mrv == 2 ? 8 : 6); }

inline int cv_mrv_for(int Mv) {
  if (Mv <= kCvMrvMax) return Mv;
  for (int d = kCvMrvMax; d >= 2; --d)
    if (Mv % d == 0) return d;
  return kCvMrvMax;
}

// acc + w * x[L] for the channel-vector tiles (the pixel is the indexed element).
template <int L>
__attribute__((always_inline)) inline float16x8_t fma_px(float16x8_t acc, float16x8_t w, float16x8_t x) {
  return fma_lane<L>(acc, w, x);
}

template <int MRV, int NR, int TAPS>
inline void cv_tile(const F16CvArgs& a, int mv0, std::ptrdiff_t p0) {
  constexpr int NQ = NR / kVl;  // pixels loaded eight at a time; the rest one by one
  float16x8_t acc[MRV][NR];
  _Pragma("GCC unroll 4") for (int v = 0; v < MRV; ++v) {
    const float16x8_t b = a.bias ? vld1q_f16(hp(a.bias) + (mv0 + v) * kVl) : vdupq_n_f16(0);
    _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) acc[v][j] = b;
  }
  const float16_t* w = hp(a.w) + static_cast<std::ptrdiff_t>(mv0) * kVl * a.K * TAPS;
  const float16_t* inp = hp(a.in) + p0;
  const std::ptrdiff_t row = a.row;
  for (int k = 0; k < a.K; ++k, inp += a.in_stride) {
    const float16_t* x = TAPS == 1 ? inp : inp - row - 1;
    _Pragma("GCC unroll 1") for (int dy = 0; dy < (TAPS == 1 ? 1 : 3); ++dy, x += row) {
      _Pragma("GCC unroll 3") for (int dx = 0; dx < (TAPS == 1 ? 1 : 3); ++dx, w += MRV * kVl) {
        float16x8_t wv[MRV];
        _Pragma("GCC unroll 4") for (int v = 0; v < MRV; ++v) wv[v] = vld1q_f16(w + v * kVl);
        _Pragma("GCC unroll 2") for (int q = 0; q < NQ; ++q) {
          const float16x8_t xq = vld1q_f16(x + dx + kVl * q);
          _Pragma("GCC unroll 4") for (int v = 0; v < MRV; ++v) {
            acc[v][8 * q + 0] = fma_px<0>(acc[v][8 * q + 0], wv[v], xq);
            acc[v][8 * q + 1] = fma_px<1>(acc[v][8 * q + 1], wv[v], xq);
            acc[v][8 * q + 2] = fma_px<2>(acc[v][8 * q + 2], wv[v], xq);
            acc[v][8 * q + 3] = fma_px<3>(acc[v][8 * q + 3], wv[v], xq);
            acc[v][8 * q + 4] = fma_px<4>(acc[v][8 * q + 4], wv[v], xq);
            acc[v][8 * q + 5] = fma_px<5>(acc[v][8 * q + 5], wv[v], xq);
            acc[v][8 * q + 6] = fma_px<6>(acc[v][8 * q + 6], wv[v], xq);
            acc[v][8 * q + 7] = fma_px<7>(acc[v][8 * q + 7], wv[v], xq);
          }
        }
        _Pragma("GCC unroll 8") for (int j = kVl * NQ; j < NR; ++j) {
          const float16x8_t xb = vld1q_dup_f16(x + dx + j);
          _Pragma("GCC unroll 4") for (int v = 0; v < MRV; ++v) acc[v][j] = vfmaq_f16(acc[v][j], wv[v], xb);
        }
      }
    }
  }
  _Pragma("GCC unroll 4") for (int v = 0; v < MRV; ++v) {
    float16_t* o = hp(a.out) + static_cast<std::ptrdiff_t>(mv0 + v) * kVl * a.out_stride + p0;
    _Pragma("GCC unroll 16") for (int j = 0; j < NR; ++j) {
      float16x8_t r = acc[v][j];
      if (a.relu) r = relu(r);
      vst1q_lane_f16(o + j, r, 0);
      vst1q_lane_f16(o + a.out_stride + j, r, 1);
      vst1q_lane_f16(o + 2 * a.out_stride + j, r, 2);
      vst1q_lane_f16(o + 3 * a.out_stride + j, r, 3);
      vst1q_lane_f16(o + 4 * a.out_stride + j, r, 4);
      vst1q_lane_f16(o + 5 * a.out_stride + j, r, 5);
      vst1q_lane_f16(o + 6 * a.out_stride + j, r, 6);
      vst1q_lane_f16(o + 7 * a.out_stride + j, r, 7);
    }
  }
}

template <int MRV, int R, int TAPS>
inline void cv_tile_rem(const F16CvArgs& a, int mv0, std::ptrdiff_t p0, int r) {
  if constexpr (R > 0) {
    if (r == R)
      cv_tile<MRV, R, TAPS>(a, mv0, p0);
    else
      cv_tile_rem<MRV, R - 1, TAPS>(a, mv0, p0, r);
  }
}

template <int MRV, int TAPS>
void cv_rows(const F16CvArgs& a, int mv0) {
  constexpr int NR = cv_pixels(MRV);
  for (int r = 0; r < a.H; ++r) {
    const std::ptrdiff_t base = r * a.row;
    int c = 0;
    for (; c + NR <= a.W; c += NR) cv_tile<MRV, NR, TAPS>(a, mv0, base + c);
    if (c < a.W) cv_tile_rem<MRV, NR - 1, TAPS>(a, mv0, base + c, a.W - c);
  }
}

// out = act(conv(in)) for M % 8 == 0 outputs, weights packed by pack_cv.
template <int TAPS>
inline void conv_cv(const F16CvArgs& a) {
  const int Mv = a.M / kVl;
  const int step = cv_mrv_for(Mv);
  for (int mv0 = 0; mv0 < Mv; mv0 += step) {
    switch (Mv - mv0 < step ? Mv - mv0 : step) {
      case 1: cv_rows<1, TAPS>(a, mv0); break;
      case 2: cv_rows<2, TAPS>(a, mv0); break;
      default: cv_rows<3, TAPS>(a, mv0); break;
    }
  }
}

// Weights of output-vector tile [mv0, mv0 + mrv) packed as [k][tap][mrv*8] halves at
// dst + mv0*8*K*taps.
inline void pack_cv(const float* src, int M, int K, int taps, half_t* dst_bits) {
  float16_t* dst = hp(dst_bits);
  const int Mv = M / kVl, step = cv_mrv_for(Mv);
  for (int mv0 = 0; mv0 < Mv; mv0 += step) {
    const int mrv = Mv - mv0 < step ? Mv - mv0 : step;
    float16_t* d = dst + static_cast<std::ptrdiff_t>(mv0) * kVl * K * taps;
    for (int k = 0; k < K; ++k)
      for (int t = 0; t < taps; ++t)
        for (int i = 0; i < mrv * kVl; ++i)
          d[(k * taps + t) * mrv * kVl + i] =
              static_cast<float16_t>(src[(static_cast<std::ptrdiff_t>(mv0 * kVl + i) * K + k) * taps + t]);
  }
}

}  // namespace
}  // namespace neonfp16
}  // namespace cdops
