// The position-vector convolutions (f32-conv1x1, f32-conv3x3), generic over the vector type:
// the register tile is [MR outputs x NR vectors of positions], accumulators held in registers
// over the whole reduction (K input channels x taps), weights broadcast from the packed
// [k][tap][m] layout. The tile sizes follow from the ISA's register budget (ukernels/isa.h).
#pragma once

#include "ukernels/generic/tile.h"
#include "ukernels/generic/vec.h"

namespace cdops {
namespace {

// Position vectors per tile for MR outputs: MR*NR accumulators + NR inputs + 1 broadcast.
constexpr int nr_for(int mr) {
  int n = (REGS - 1) / (mr + 1);
  return n < 1 ? 1 : (n > 10 ? 10 : n);
}

// Weights of one output tile [m0, m0 + mr) are packed as [k][tap][mr] starting at w + m0*K*TAPS
// (see pack_weights below), so every weight is a constant displacement from one pointer.
// Outputs per register tile for M outputs: the largest divisor of M in [3, MR_MAX] (equal tiles),
// else MR_MAX (the last tile smaller); M itself when it fits.
// With the gather fused (1x1 with the folded BN + ReLU on its loads), a group of up to MRF_TILE
// outputs is one tall tile, so each picked channel is clamped once; up to MRF_MAX outputs are
// equal tiles of at most MRF_TILE (each clamps the inputs again): a 16 x 1 tile loads 17 values
// and a threshold per 16 FMAs and ran at 31-34 G MAC/s in cache on AVX-512 (24 inputs, 56 wide),
// two 8 x 3 tiles at 44.
constexpr int MRF_TILE = MRF_MAX < 8 ? MRF_MAX : 8;
inline int mr_for(int M, bool fused = false) {
  if (fused && M <= MRF_MAX) {
    const int tiles = (M + MRF_TILE - 1) / MRF_TILE;
    return (M + tiles - 1) / tiles;
  }
  if (M <= MR_MAX) return M;
  for (int d = MR_MAX; d >= 3; --d)
    if (M % d == 0) return d;
  return MR_MAX;
}

// One input of the fused 1x1: its NR position vectors clamped against threshold t (max for LO,
// min for the others: the folded BN + ReLU), times the MR weights at w.
template <bool LO, int MR, int NR>
__attribute__((always_inline)) inline void clamp_step(V (&acc)[MR][NR], const float* src, float t, const float* w) {
  const V tv = splat(t);
  V x[NR];
  CD_UK_UNROLL
  for (int j = 0; j < NR; ++j) x[j] = LO ? clamp_lo(loadu(src + j * VL), tv) : clamp_hi(loadu(src + j * VL), tv);
  CD_UK_UNROLL
  for (int i = 0; i < MR; ++i) {
    const V wv = splat(w[i]);
    CD_UK_UNROLL
    for (int j = 0; j < NR; ++j) acc[i][j] = fma_(wv, x[j], acc[i][j]);
  }
}

template <int MR, int NR, int TAPS, bool BN>
inline void conv_tile(const ConvArgs& a, int m0, int i0) {
  V acc[MR][NR];
  tile_init(acc, a, m0);
  const float* w = a.w + static_cast<std::ptrdiff_t>(m0) * a.K * TAPS;
  if constexpr (BN) {
    // 1x1 on picked channels, BN + ReLU folded: inputs [0, n_max) clamp with max, the rest with min
    int k = 0;
    for (; k < a.n_max; ++k, w += MR) clamp_step<true>(acc, a.in_ptrs[k] + i0, a.bn_thresh[k], w);
    for (; k < a.K; ++k, w += MR) clamp_step<false>(acc, a.in_ptrs[k] + i0, a.bn_thresh[k], w);
    tile_store(acc, a, m0, i0, VL);
    return;
  }
  const float* inp = a.in + i0;
  const std::ptrdiff_t row = a.row;
  for (int k = 0; k < a.K; ++k, inp += a.in_stride, w += TAPS * MR) {
    if constexpr (TAPS == 1) {
      V x[NR];
      CD_UK_UNROLL
      for (int j = 0; j < NR; ++j) x[j] = loadu(inp + j * VL);
      CD_UK_UNROLL
      for (int i = 0; i < MR; ++i) {
        const V wv = splat(w[i]);
        CD_UK_UNROLL
        for (int j = 0; j < NR; ++j) acc[i][j] = fma_(wv, x[j], acc[i][j]);
      }
    } else {
      const float* rows[3] = {inp - row, inp, inp + row};
      for (int dy = 0; dy < 3; ++dy) {
        for (int dx = 0; dx < 3; ++dx) {
          V x[NR];
          CD_UK_UNROLL
          for (int j = 0; j < NR; ++j) x[j] = loadu(rows[dy] + (dx - 1) + j * VL);
          CD_UK_UNROLL
          for (int i = 0; i < MR; ++i) {
            const V wv = splat(w[(dy * 3 + dx) * MR + i]);
            CD_UK_UNROLL
            for (int j = 0; j < NR; ++j) acc[i][j] = fma_(wv, x[j], acc[i][j]);
          }
        }
      }
    }
  }
  tile_store(acc, a, m0, i0, VL);
}

// Remainder of position vectors (fewer than a full NR tile): pick the template by count.
template <int MR, int R, int TAPS, bool BN>
inline void conv_tile_rem(const ConvArgs& a, int m0, int i0, int r) {
  if constexpr (R > 0) {
    if (r == R)
      conv_tile<MR, R, TAPS, BN>(a, m0, i0);
    else
      conv_tile_rem<MR, R - 1, TAPS, BN>(a, m0, i0, r);
  }
}

template <int MR, int TAPS, bool BN>
void conv_rows(const ConvArgs& a, int m0) {
  constexpr int NR = nr_for(MR);
  const int nv = a.nq / VL;
  int j = 0;
  for (; j + NR <= nv; j += NR) conv_tile<MR, NR, TAPS, BN>(a, m0, j * VL);
  if (j < nv) conv_tile_rem<MR, NR - 1, TAPS, BN>(a, m0, j * VL, nv - j);
}

// One output tile of r outputs (r <= MR_MAX): pick the template by count.
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
  constexpr int TOP = BN ? MRF_TILE : MR_MAX;
  const int mr = mr_for(a.M, BN);
  for (int m0 = 0; m0 < a.M; m0 += mr) conv_rows_n<TOP, TAPS, BN>(a, m0, a.M - m0 < mr ? a.M - m0 : mr);
}


// ONNX order [M][K][taps] -> per output tile (mr_for(M) outputs, the last one maybe smaller):
// [k][tap][mr], tile m0 at dst + m0*K*taps.
inline void pack_weights(const float* src, int M, int K, int taps, int fused, float* dst) {
  const int step = mr_for(M, fused != 0);
  for (int m0 = 0; m0 < M; m0 += step) {
    const int mr = M - m0 < step ? M - m0 : step;
    float* d = dst + static_cast<std::ptrdiff_t>(m0) * K * taps;
    for (int k = 0; k < K; ++k)
      for (int t = 0; t < taps; ++t)
        for (int i = 0; i < mr; ++i) d[(k * taps + t) * mr + i] = src[(static_cast<std::ptrdiff_t>(m0 + i) * K + k) * taps + t];
  }
}

}  // namespace
}  // namespace cdops
