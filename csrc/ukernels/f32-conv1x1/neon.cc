// f32-conv1x1, NEON / Advanced SIMD: intrinsics (ukernels/neon/conv.h: weights as q-registers with
// lane-indexed FMLA, tiles per core class), not the generic vector kernel.
#include "ukernels/neon/conv.h"

namespace cdops {

void f32_conv1x1_neon(const ConvArgs& a) {
  if (a.in_ptrs)
    neon::conv<1, true>(a);
  else
    neon::conv<1, false>(a);
}

void f32_conv1x1_pack_neon(const float* src, int M, int K, int fused, float* dst) {
  neon::pack(src, M, K, 1, fused != 0, dst);
}

}  // namespace cdops
