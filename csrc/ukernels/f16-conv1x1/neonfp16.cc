// f16-conv1x1, NEON with ARMv8.2 FP16 arithmetic: fp16 position-vector 1x1, optionally with the
// BN+ReLU gather fused into its loads (ukernels/neonfp16/conv.h).
#include "ukernels/neonfp16/conv.h"

namespace cdops {

void f16_conv1x1_neonfp16(const F16ConvArgs& a) {
  if (a.in_ptrs)
    neonfp16::conv<1, true>(a);
  else
    neonfp16::conv<1, false>(a);
}

void f16_conv1x1_pack_neonfp16(const float* src, int M, int K, int fused, half_t* dst) {
  neonfp16::pack(src, M, K, 1, fused != 0, dst);
}

}  // namespace cdops
