// f32-conv3x3-rows, NEON / Advanced SIMD: intrinsics (ukernels/neon/conv.h: an input channel's 9*M
// weights held in q-registers for lane-indexed FMLA), not the generic vector kernel. Weights are
// packed by f32_conv3x3_pack_neon.
#include "ukernels/neon/conv.h"

namespace cdops {

void f32_conv3x3_rows_neon(const ConvArgs& a) { neon::conv3x3_rows(a); }

}  // namespace cdops
