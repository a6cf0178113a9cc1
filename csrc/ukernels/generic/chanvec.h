// The channel-vectorised convolutions (f32-chanvec-conv), generic over the vector type: outputs
// along the vector lanes, pixels in the register tile, for small images where position vectors
// would be mostly padding.
#pragma once

#include "ukernels/generic/store_columns.h"
#include "ukernels/generic/vec.h"

namespace cdops {
namespace {

constexpr int CV_MRV_MAX = VL == 1 ? 4 : (REGS >= 32 ? 3 : 2);  // output vectors per tile
constexpr int cv_nr_for(int mrv) {
  int n = (REGS - 1 - mrv) / mrv;
  return n < 1 ? 1 : (n > 14 ? 14 : n);
}
inline int cv_mrv_for(int Mv) {
  if (Mv <= CV_MRV_MAX) return Mv;
  for (int d = CV_MRV_MAX; d >= 2; --d)
    if (Mv % d == 0) return d;
  return CV_MRV_MAX;
}

// Images this wide take tiles of two rows (2 * CV_ROW2_W pixels), where the register budget holds
// them: a one-row tile would use half the accumulators and load every weight vector for half the
// FMAs (the 7x7 stage). Not on NEON, whose tiles the ARM cost model tunes.
constexpr int CV_ROW2_W = (CD_UK_ID == CD_UK_ID_neon || CD_UK_ID == CD_UK_ID_scalar) ? 0 : 7;

// Weights of output-vector tile [mv0, mv0 + mrv) packed as [k][tap][mrv*VL] at w + mv0*VL*K*TAPS.
// The tile's NR pixels are rows of PW pixels: pixel j at p0 + (j / PW) * a.row + j % PW.
template <int MRV, int NR, int TAPS, int PW = NR>
inline void cv_tile(const CvArgs& a, int mv0, std::ptrdiff_t p0) {
  V acc[MRV][NR];
  for (int v = 0; v < MRV; ++v) {
    const V b = a.bias ? loadu(a.bias + (mv0 + v) * VL) : zero();
    for (int j = 0; j < NR; ++j) acc[v][j] = b;
  }
  const float* w = a.w + static_cast<std::ptrdiff_t>(mv0) * VL * a.K * TAPS;
  const float* inp = a.in + p0;
  const std::ptrdiff_t row = a.row;
  for (int k = 0; k < a.K; ++k, inp += a.in_stride) {
    const float* rows[3] = {inp - row, inp, inp + row};
    for (int t = 0; t < TAPS; ++t, w += MRV * VL) {
      const float* x = TAPS == 1 ? inp : rows[t / 3] + (t % 3 - 1);
      V wv[MRV];
      for (int v = 0; v < MRV; ++v) wv[v] = loadu(w + v * VL);
      for (int j = 0; j < NR; ++j) {
        const V xb = splat(x[(j / PW) * row + j % PW]);
        for (int v = 0; v < MRV; ++v) acc[v][j] = fma_(wv[v], xb, acc[v][j]);
      }
    }
  }
  for (int v = 0; v < MRV; ++v) {
    float* o = a.out + static_cast<std::ptrdiff_t>(mv0 + v) * VL * a.out_stride + p0;
    V r[NR];
    if (a.relu)
      for (int j = 0; j < NR; ++j) r[j] = relu(acc[v][j]);
    else
      for (int j = 0; j < NR; ++j) r[j] = acc[v][j];
    for (int j0 = 0; j0 < NR; j0 += PW) store_columns<PW>(r + j0, o + (j0 / PW) * row, a.out_stride);
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
  constexpr int NR = cv_nr_for(MRV);
  if constexpr (CV_ROW2_W > 0 && 2 * CV_ROW2_W <= NR) {
    if (a.W == CV_ROW2_W) {
      int r = 0;
      for (; r + 2 <= a.H; r += 2) cv_tile<MRV, 2 * CV_ROW2_W, TAPS, CV_ROW2_W>(a, mv0, r * a.row);
      if (r < a.H) cv_tile<MRV, CV_ROW2_W, TAPS>(a, mv0, r * a.row);
      return;
    }
  }
  for (int r = 0; r < a.H; ++r) {
    const std::ptrdiff_t base = r * a.row;
    int c = 0;
    for (; c + NR <= a.W; c += NR) cv_tile<MRV, NR, TAPS>(a, mv0, base + c);
    if (c < a.W) cv_tile_rem<MRV, NR - 1, TAPS>(a, mv0, base + c, a.W - c);
  }
}

template <int R, int TAPS>
inline void cv_rows_n(const CvArgs& a, int mv0, int r) {
  if constexpr (R > 0) {
    if (r == R)
      cv_rows<R, TAPS>(a, mv0);
    else
      cv_rows_n<R - 1, TAPS>(a, mv0, r);
  }
}

template <int TAPS>
inline void conv_cv(const CvArgs& a) {
  const int Mv = a.M / VL;
  const int step = cv_mrv_for(Mv);
  for (int mv0 = 0; mv0 < Mv; mv0 += step) cv_rows_n<CV_MRV_MAX, TAPS>(a, mv0, Mv - mv0 < step ? Mv - mv0 : step);
}

inline void pack_cv(const float* src, int M, int K, int taps, float* dst) {
  const int Mv = M / VL, step = cv_mrv_for(Mv);
  for (int mv0 = 0; mv0 < Mv; mv0 += step) {
    const int mrv = Mv - mv0 < step ? Mv - mv0 : step;
    float* d = dst + static_cast<std::ptrdiff_t>(mv0) * VL * K * taps;
    for (int k = 0; k < K; ++k)
      for (int t = 0; t < taps; ++t)
        for (int i = 0; i < mrv * VL; ++i)
          d[(k * taps + t) * mrv * VL + i] = src[(static_cast<std::ptrdiff_t>(mv0 * VL + i) * K + k) * taps + t];
  }
}

}  // namespace
}  // namespace cdops
