// f32-chanvec-conv, NEON / Advanced SIMD: intrinsics for the convolutions (ukernels/neon/chanvec.h:
// four pixels per q-register load, lane-indexed FMLA); the generic packing and output tiles.
#define CD_UK_ISA neon
#include "ukernels/generic/chanvec.h"
#include "ukernels/neon/chanvec.h"

namespace cdops {

void f32_chanvec_conv1x1_neon(const CvArgs& a) { neon::conv_cv<1>(a); }
void f32_chanvec_conv3x3_neon(const CvArgs& a) { neon::conv_cv<9>(a); }
void f32_chanvec_pack_neon(const float* src, int M, int K, int taps, float* dst) { pack_cv(src, M, K, taps, dst); }

}  // namespace cdops
