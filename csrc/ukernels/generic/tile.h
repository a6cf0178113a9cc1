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
  for (int i = 0; i < MR; ++i) {
    const V b = a.bias ? splat(a.bias[m0 + i]) : zero();
    for (int j = 0; j < N; ++j) acc[i][j] = b;
  }
}

// Vector j of output m0 + i goes to position p0 + j * step of that output's row.
template <int MR, int N>
__attribute__((always_inline)) inline void tile_store(const V (&acc)[MR][N], const ConvArgs& a, int m0,
                                                      std::ptrdiff_t p0, std::ptrdiff_t step) {
  for (int i = 0; i < MR; ++i) {
    float* o = a.out + (m0 + i) * a.out_stride + p0;
    for (int j = 0; j < N; ++j) {
      V v = acc[i][j];
      if (a.relu) v = relu(v);
      if (a.mask) v = andmask(v, loadmask(a.mask + p0 + j * step));
      storeu(o + j * step, v);
    }
  }
}

}  // namespace
}  // namespace cdops
