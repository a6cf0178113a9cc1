// f32-conv3x3, NEON / Advanced SIMD: intrinsics (ukernels/neon/conv.h: weights as q-registers with
// lane-indexed FMLA, tiles per core class), not the generic vector kernel.
#include "ukernels/neon/conv.h"

namespace cdops {

void f32_conv3x3_neon(const ConvArgs& a) { neon::conv<9, false>(a); }

void f32_conv3x3_pack_neon(const float* src, int M, int K, float* dst) { neon::pack(src, M, K, 9, false, dst); }

}  // namespace cdops
