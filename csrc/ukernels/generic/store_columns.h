// Stores a register tile whose vectors are pixels (lanes: channels) as channel rows: lane l of
// r[j] goes to o[l * stride + j]. The channel-vectorised kernels end with this. One float at a time
// it is VL * NR stores and lane extracts; on AVX2 and AVX-512 (512- and 256-bit builds) the tile is
// transposed in registers, eight pixels at a time, and each channel's row is one (masked) store.
#pragma once

#include <cstddef>

#include "ukernels/generic/vec.h"

namespace cdops {
namespace {

#if CD_UK_ID == CD_UK_ID_avx512
// 16 channels x N <= 8 pixels r[0..N): after two unpack stages, u[4i + c] holds in its 128-bit
// lane k the pixels 4i..4i+3 of channel 4k + c; one two-source permute per pair joins pixels 0-3 and
// 4-7 of channels 4k + c and 4(k+1) + c (low and high 256 bits), each row then one masked store.
template <int N>
__attribute__((always_inline)) inline void store_columns8(const __m512* r, float* o, std::ptrdiff_t stride) {
  __m512 x[8];
  for (int j = 0; j < 8; ++j) x[j] = j < N ? r[j] : _mm512_setzero_ps();
  __m512 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(x[2 * i], x[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(x[2 * i], x[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    const __m512d a0 = _mm512_castps_pd(t[4 * i]), a1 = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d b0 = _mm512_castps_pd(t[4 * i + 2]), b1 = _mm512_castps_pd(t[4 * i + 3]);
    u[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, b0));
    u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, b0));
    u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, b1));
    u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, b1));
  }
  // [a.lane k, b.lane k, a.lane k+1, b.lane k+1] for k = 0 and k = 2
  const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i hi = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const __mmask16 m = static_cast<__mmask16>((1u << N) - 1);
  const __mmask16 mh = static_cast<__mmask16>(m << 8);
  for (int c = 0; c < 4; ++c) {
    const __m512 r01 = _mm512_permutex2var_ps(u[c], lo, u[4 + c]);  // channels c, 4 + c
    const __m512 r23 = _mm512_permutex2var_ps(u[c], hi, u[4 + c]);  // channels 8 + c, 12 + c
    _mm512_mask_storeu_ps(o + c * stride, m, r01);
    _mm512_mask_storeu_ps(o + (4 + c) * stride - 8, mh, r01);  // high half: lanes 8.. of the row - 8
    _mm512_mask_storeu_ps(o + (8 + c) * stride, m, r23);
    _mm512_mask_storeu_ps(o + (12 + c) * stride - 8, mh, r23);
  }
}
#elif CD_UK_ID == CD_UK_ID_avx512y || CD_UK_ID == CD_UK_ID_avx2
// N <= 8 floats of v to o: one masked store on AVX-512VL; on AVX2 (whose masked stores are slow on
// some AMD cores) a full store, or 4 + 2 + 1 floats.
template <int N>
__attribute__((always_inline)) inline void store_row8(float* o, __m256 v) {
#if CD_UK_ID == CD_UK_ID_avx512y
  _mm256_mask_storeu_ps(o, static_cast<__mmask8>((1u << N) - 1), v);
#else
  if constexpr (N == 8) {
    _mm256_storeu_ps(o, v);
  } else {
    __m128 x = _mm256_castps256_ps128(v);
    if constexpr (N >= 4) {
      _mm_storeu_ps(o, x);
      x = _mm256_extractf128_ps(v, 1);
    }
    constexpr int R = N % 4;
    float* t = o + (N - R);
    if constexpr (R >= 2) _mm_storel_pi(reinterpret_cast<__m64*>(t), x);
    if constexpr (R == 3) _mm_store_ss(t + 2, _mm_movehl_ps(x, x));
    if constexpr (R == 1) _mm_store_ss(t, x);
  }
#endif
}

// 8 channels x N <= 8 pixels: the usual 8x8 transpose (unpack, shuffle, 128-bit permute), each
// channel's row then one store.
template <int N>
__attribute__((always_inline)) inline void store_columns8(const __m256* r, float* o, std::ptrdiff_t stride) {
  __m256 x[8];
  for (int j = 0; j < 8; ++j) x[j] = j < N ? r[j] : _mm256_setzero_ps();
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(x[2 * i], x[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(x[2 * i], x[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  // u[4i + c], 128-bit lane k: pixels 4i..4i+3 of channel 4k + c
  for (int c = 0; c < 4; ++c) {
    store_row8<N>(o + c * stride, _mm256_permute2f128_ps(u[c], u[4 + c], 0x20));
    store_row8<N>(o + (4 + c) * stride, _mm256_permute2f128_ps(u[c], u[4 + c], 0x31));
  }
}
#endif

// Lane l of r[j] -> o[l * stride + j], j < NR.
template <int NR>
__attribute__((always_inline)) inline void store_columns(const V* r, float* o, std::ptrdiff_t stride) {
#if CD_UK_ID == CD_UK_ID_avx512 || CD_UK_ID == CD_UK_ID_avx512y || CD_UK_ID == CD_UK_ID_avx2
  static_assert(NR <= 16, "at most 16 pixels per tile");
#if CD_UK_ID == CD_UK_ID_avx512
  using Native = __m512;
#else
  using Native = __m256;
#endif
  Native x[NR];
  for (int j = 0; j < NR; ++j) x[j] = (Native)r[j];
  store_columns8<(NR < 8 ? NR : 8)>(x, o, stride);
  if constexpr (NR > 8) store_columns8<NR - 8>(x + 8, o + 8, stride);
#else
  for (int j = 0; j < NR; ++j)
    for (int l = 0; l < VL; ++l) o[l * stride + j] = lane(r[j], l);
#endif
}

}  // namespace
}  // namespace cdops
