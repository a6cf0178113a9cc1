// f16-convert, NEON with ARMv8.2 FP16: float -> half (round to nearest even; beyond the fp16 range,
// +-inf) and half -> float (exact), 8 values per step and a scalar tail.
#if !defined(__aarch64__) || !defined(__ARM_FEATURE_FP16_VECTOR_ARITHMETIC)
#error "f16-convert/neonfp16.cc needs -march=armv8.2-a+fp16"
#endif
#include <arm_neon.h>

#include "ukernels/ukernels.h"

namespace cdops {

void f16_convert_f32_f16_neonfp16(const float* src, half_t* dst_bits, std::size_t n) {
  float16_t* dst = reinterpret_cast<float16_t*>(dst_bits);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    vst1q_f16(dst + i, vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(src + i)), vld1q_f32(src + i + 4)));
  for (; i < n; ++i) dst[i] = static_cast<float16_t>(src[i]);
}

void f16_convert_f16_f32_neonfp16(const half_t* src_bits, float* dst, std::size_t n) {
  const float16_t* src = reinterpret_cast<const float16_t*>(src_bits);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float16x8_t v = vld1q_f16(src + i);
    vst1q_f32(dst + i, vcvt_f32_f16(vget_low_f16(v)));
    vst1q_f32(dst + i + 4, vcvt_high_f32_f16(v));
  }
  for (; i < n; ++i) dst[i] = static_cast<float>(src[i]);
}

}  // namespace cdops
