// The two ends of a register tile of accumulators [MR outputs][N vectors], shared by the
// position-vector convolutions (conv.h) and the row-band 3x3 (conv3x3_rows.h): the accumulators
// start at the output's bias, and leave through the ReLU and the padding mask into the output.
#pragma once

#include <cstddef>

#include "ukernels/generic/vec.h"

namespace cdops {
namespace {

template <int MR, int N>
__attribute__((always_inline)) inline void tile_init(V (&acc)[MR][N], const ConvArgs& a, int m0) {
  CD_UK_UNROLL
  for (int i = 0; i < MR; ++i) {
    const V b = a.bias ? splat(a.bias[m0 + i]) : zero();
    CD_UK_UNROLL
    for (int j = 0; j < N; ++j) acc[i][j] = b;
  }
}

// Vector j of output m0 + i goes to position p0 + j * step of that output's row. The relu and
// mask choices are made once per tile, not per vector.
template <bool RELU, bool MASK, int MR, int N>
__attribute__((always_inline)) inline void tile_store_as(const V (&acc)[MR][N], const ConvArgs& a, int m0,
                                                         std::ptrdiff_t p0, std::ptrdiff_t step) {
  CD_UK_UNROLL
  for (int i = 0; i < MR; ++i) {
    float* o = a.out + (m0 + i) * a.out_stride + p0;
    CD_UK_UNROLL
    for (int j = 0; j < N; ++j) {
      V v = acc[i][j];
      if constexpr (RELU && MASK)
        v = relu_masked(v, a.mask + p0 + j * step);
      else if constexpr (RELU)
        v = relu(v);
      else if constexpr (MASK)
        v = andmask(v, loadmask(a.mask + p0 + j * step));
      storeu(o + j * step, v);
    }
  }
}

template <int MR, int N>
__attribute__((always_inline)) inline void tile_store(const V (&acc)[MR][N], const ConvArgs& a, int m0,
                                                      std::ptrdiff_t p0, std::ptrdiff_t step) {
  if (a.relu) {
    if (a.mask)
      tile_store_as<true, true>(acc, a, m0, p0, step);
    else
      tile_store_as<true, false>(acc, a, m0, p0, step);
  } else {
    if (a.mask)
      tile_store_as<false, true>(acc, a, m0, p0, step);
    else
      tile_store_as<false, false>(acc, a, m0, p0, step);
  }
}

}  // namespace
}  // namespace cdops
