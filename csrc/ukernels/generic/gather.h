// BN + ReLU of picked channels into a contiguous scratch (f32-bnrelu-gather), generic over the
// vector type.
#pragma once

#include "ukernels/generic/vec.h"

namespace cdops {
namespace {

inline void bnrelu_gather(const GatherArgs& a) {
  for (int k = 0; k < a.K; ++k) {
    const float* src = a.in[k];
    float* dst = a.out + k * a.out_stride;
    const V s = splat(a.scale[k]), t = splat(a.shift[k]);
    for (int i = 0; i < a.nq; i += VL) storeu(dst + i, relu(fma_(loadu(src + i), s, t)));
  }
}

}  // namespace
}  // namespace cdops
