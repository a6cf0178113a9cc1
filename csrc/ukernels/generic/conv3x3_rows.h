// The row-band 3x3 (f32-conv3x3-rows), generic over the vector type. Its weights are packed as
// the position-vector 3x3's (one tile of M <= 4 outputs: [k][tap][M]).
#pragma once

#include "ukernels/generic/tile.h"
#include "ukernels/generic/vec.h"

namespace cdops {
namespace {

// For 1-4 outputs per group the position-vector 3x3 loads one input vector per FMA. Here a tile is
// R image rows x one position vector: each input row vector loaded for a (k, dx) serves up to 3
// output rows (dy = 0, 1, 2), so loads per FMA drop from 1 to about (R + 2) / (3 R M).
constexpr int vr_rows(int m) {
  int r = (REGS - 4) / (m + 1);  // R*m accumulators + R + 2 input rows + a broadcast
  return r < 1 ? 1 : (r > 12 ? 12 : r);
}

template <int MR, int R>
inline void vr_tile(const ConvArgs& a, int m0, std::ptrdiff_t p0) {
  V acc[MR][R];
  tile_init(acc, a, m0);
  const float* w = a.w + static_cast<std::ptrdiff_t>(m0) * a.K * 9;
  const std::ptrdiff_t row = a.row;
  const float* inp = a.in + p0 - row;  // input row above the tile's first row
  for (int k = 0; k < a.K; ++k, inp += a.in_stride, w += 9 * MR) {
    for (int dx = 0; dx < 3; ++dx) {
      // all R + 2 input rows in registers, then dy-major FMAs: consecutive FMAs hit different
      // accumulators (no chain on one accumulator within the FMA latency)
      V x[R + 2];
      const float* src = inp + (dx - 1);
      CD_UK_UNROLL
      for (int rr = 0; rr < R + 2; ++rr) x[rr] = loadu(src + rr * row);
      for (int dy = 0; dy < 3; ++dy)
        CD_UK_UNROLL
        for (int i = 0; i < MR; ++i) {
          const V wv = splat(w[(dy * 3 + dx) * MR + i]);
          CD_UK_UNROLL
          for (int r = 0; r < R; ++r) acc[i][r] = fma_(wv, x[r + dy], acc[i][r]);
        }
    }
  }
  tile_store(acc, a, m0, p0, row);
}

template <int MR, int R>
inline void vr_tile_rem(const ConvArgs& a, int m0, std::ptrdiff_t p0, int r) {
  if constexpr (R > 0) {
    if (r == R)
      vr_tile<MR, R>(a, m0, p0);
    else
      vr_tile_rem<MR, R - 1>(a, m0, p0, r);
  }
}

template <int MR>
void vr_rows(const ConvArgs& a, int m0) {
  constexpr int R = vr_rows(MR);
  const int H = static_cast<int>(a.nq / a.row);
  const int ncv = static_cast<int>((a.row + VL - 1) / VL);
  for (int r0 = 0; r0 < H; r0 += R) {
    const int nr = H - r0 < R ? H - r0 : R;
    for (int cv = 0; cv < ncv; ++cv) {
      const std::ptrdiff_t p0 = r0 * a.row + cv * VL;
      if (nr == R)
        vr_tile<MR, R>(a, m0, p0);
      else
        vr_tile_rem<MR, R - 1>(a, m0, p0, nr);
    }
  }
}

// a.nq = H * row (whole rows); a.M <= 4; weights packed by pack_conv3x3 (M <= MR_MAX: one tile). Writes may spill up to VL - 1 positions past the last row (into the bottom pad row).
inline void conv3x3_rows(const ConvArgs& a) {
  switch (a.M) {
    case 1: vr_rows<1>(a, 0); break;
    case 2: vr_rows<2>(a, 0); break;
    case 3: vr_rows<3>(a, 0); break;
    default: vr_rows<4>(a, 0); break;
  }
}

}  // namespace
}  // namespace cdops
