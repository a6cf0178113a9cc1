// f16-conv3x3, NEON with ARMv8.2 FP16 arithmetic: fp16 position-vector 3x3
// (ukernels/neonfp16/conv.h).
#include "ukernels/neonfp16/conv.h"

namespace cdops {

void f16_conv3x3_neonfp16(const F16ConvArgs& a) { neonfp16::conv<9, false>(a); }

void f16_conv3x3_pack_neonfp16(const float* src, int M, int K, half_t* dst) {
  neonfp16::pack(src, M, K, 9, false, dst);
}

}  // namespace cdops
