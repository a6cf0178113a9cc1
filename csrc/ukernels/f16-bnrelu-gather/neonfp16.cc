// f16-bnrelu-gather, NEON with ARMv8.2 FP16 arithmetic: out[k] = max(in_k * scale[k] + shift[k], 0)
// in halves, 8 per vector.
#if !defined(__aarch64__) || !defined(__ARM_FEATURE_FP16_VECTOR_ARITHMETIC)
#error "f16-bnrelu-gather/neonfp16.cc needs -march=armv8.2-a+fp16"
#endif
#include <arm_neon.h>

#include "ukernels/ukernels.h"

namespace cdops {

void f16_bnrelu_gather_neonfp16(const F16GatherArgs& a) {
  const float16x8_t zero = vdupq_n_f16(0);
  for (int k = 0; k < a.K; ++k) {
    const float16_t* src = reinterpret_cast<const float16_t*>(a.in[k]);
    float16_t* dst = reinterpret_cast<float16_t*>(a.out + k * a.out_stride);
    const float16x8_t s = vld1q_dup_f16(reinterpret_cast<const float16_t*>(a.scale) + k);
    const float16x8_t t = vld1q_dup_f16(reinterpret_cast<const float16_t*>(a.shift) + k);
    for (int i = 0; i < a.nq; i += 8) vst1q_f16(dst + i, vmaxnmq_f16(vfmaq_f16(t, vld1q_f16(src + i), s), zero));
  }
}

}  // namespace cdops
