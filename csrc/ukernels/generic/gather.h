// BN + ReLU of picked channels into a contiguous scratch (f32-bnrelu-gather), generic over the
// vector type: unfolded (an FMA and a max per vector) or folded (one clamp per vector; GatherArgs).
#pragma once

#include "ukernels/generic/vec.h"

namespace cdops {
namespace {

// Inputs [k0, k1) clamped against their thresholds: max(x, t) for LO, min(x, t) otherwise. The
// arguments are read into locals first: the stores may alias them, so the compiler would reload the
// count from a after every store.
template <bool LO>
inline void clamp_gather(const GatherArgs& a, int k0, int k1) {
  const float* const* in = a.in;
  const float* thresh = a.thresh;
  float* out = a.out;
  const std::ptrdiff_t os = a.out_stride;
  const int nq = a.nq;
  for (int k = k0; k < k1; ++k) {
    const float* src = in[k];
    float* dst = out + k * os;
    const V t = splat(thresh[k]);
    for (int i = 0; i < nq; i += VL) storeu(dst + i, LO ? clamp_lo(loadu(src + i), t) : clamp_hi(loadu(src + i), t));
  }
}

inline void bnrelu_gather(const GatherArgs& a) {
  if (a.thresh) {
    clamp_gather<true>(a, 0, a.n_max);
    clamp_gather<false>(a, a.n_max, a.K);
    return;
  }
  for (int k = 0; k < a.K; ++k) {
    const float* src = a.in[k];
    float* dst = a.out + k * a.out_stride;
    const V s = splat(a.scale[k]), t = splat(a.shift[k]);
    for (int i = 0; i < a.nq; i += VL) storeu(dst + i, relu(fma_(loadu(src + i), s, t)));
  }
}

}  // namespace
}  // namespace cdops
