// f16-chanvec-conv, NEON with ARMv8.2 FP16 arithmetic: fp16 channel-vectorised 1x1 and 3x3 for
// small images (ukernels/neonfp16/chanvec.h).
#include "ukernels/neonfp16/chanvec.h"

namespace cdops {

void f16_chanvec_conv1x1_neonfp16(const F16CvArgs& a) { neonfp16::conv_cv<1>(a); }
void f16_chanvec_conv3x3_neonfp16(const F16CvArgs& a) { neonfp16::conv_cv<9>(a); }
void f16_chanvec_pack_neonfp16(const float* src, int M, int K, int taps, half_t* dst) {
  neonfp16::pack_cv(src, M, K, taps, dst);
}

}  // namespace cdops
