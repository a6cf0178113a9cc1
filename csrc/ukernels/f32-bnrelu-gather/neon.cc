// f32-bnrelu-gather, NEON / Advanced SIMD: intrinsics. The generic loop keeps one vector per
// iteration and reloads the arguments after each store (llvm-mca: about 5 cycles a vector on
// cortex-a72); here the arguments are read once and four vectors go per iteration, in both forms
// (GatherArgs: unfolded BN + ReLU, or the folded clamp).
#if !defined(__aarch64__)
#error "f32-bnrelu-gather/neon.cc is for AArch64"
#endif

#include <arm_neon.h>

#include <cstddef>

#include "ukernels/ukernels.h"

namespace cdops {

namespace {

// Inputs [k0, k1) clamped against their thresholds (the folded form): per 4 vectors one 4-register
// ld1, 4 fmaxnm (LO) or fminnm, one 4-register st1; fmaxnm / fminnm return the threshold for a NaN
// input. llvm-mca, cycles per 16 floats: neoverse-n1 4.1 (6.0 with 4 ldr q + 2 stp q, which GCC
// makes of single-vector stores: a q store takes two V-pipe cycles in its N1 model), cortex-a72 10.1
// (11.1; stores bound it).
template <bool LO>
void clamp_gather(const GatherArgs& a, int k0, int k1) {
  const float* const* in = a.in;  // locals: the stores may alias a, whose fields GCC would reload
  const float* thresh = a.thresh;
  float* out = a.out;
  const int nq = a.nq;
  const std::ptrdiff_t os = a.out_stride;
  for (int k = k0; k < k1; ++k) {
    const float* src = in[k];
    float* dst = out + k * os;
    const float32x4_t t = vdupq_n_f32(thresh[k]);
    auto clamp = [&](float32x4_t x) { return LO ? vmaxnmq_f32(x, t) : vminnmq_f32(x, t); };
    int i = 0;
    for (; i + 16 <= nq; i += 16) {
      float32x4x4_t x = vld1q_f32_x4(src + i);
      x.val[0] = clamp(x.val[0]);
      x.val[1] = clamp(x.val[1]);
      x.val[2] = clamp(x.val[2]);
      x.val[3] = clamp(x.val[3]);
      vst1q_f32_x4(dst + i, x);
    }
    for (; i < nq; i += 4) vst1q_f32(dst + i, clamp(vld1q_f32(src + i)));
  }
}

}  // namespace

void f32_bnrelu_gather_neon(const GatherArgs& a) {
  if (a.thresh) {
    clamp_gather<true>(a, 0, a.n_max);
    clamp_gather<false>(a, a.n_max, a.K);
    return;
  }
  const int K = a.K, nq = a.nq;
  const std::ptrdiff_t os = a.out_stride;
  const float32x4_t zero = vdupq_n_f32(0.0f);
  float32x4_t shift[4];  // the shift's copies: FMLA overwrites its addend, and ldr q costs no FP slot
  for (int k = 0; k < K; ++k) {
    const float* src = a.in[k];
    float* dst = a.out + k * os;
    const float s = a.scale[k];
    const float32x4_t t = vdupq_n_f32(a.shift[k]);
    for (auto& c : shift) c = t;
    const float32x4_t* sh = shift;
    asm volatile("" : "+r"(sh) : : "memory");  // GCC no longer knows what sh holds: it loads it
    int i = 0;
    for (; i + 16 <= nq; i += 16) {
      // reload the copies each iteration (kept in registers, each use would need a mov)
      asm volatile("" ::: "memory");
      const float32x4_t x0 = vld1q_f32(src + i), x1 = vld1q_f32(src + i + 4), x2 = vld1q_f32(src + i + 8),
                        x3 = vld1q_f32(src + i + 12);
      vst1q_f32(dst + i, vmaxnmq_f32(vfmaq_n_f32(sh[0], x0, s), zero));
      vst1q_f32(dst + i + 4, vmaxnmq_f32(vfmaq_n_f32(sh[1], x1, s), zero));
      vst1q_f32(dst + i + 8, vmaxnmq_f32(vfmaq_n_f32(sh[2], x2, s), zero));
      vst1q_f32(dst + i + 12, vmaxnmq_f32(vfmaq_n_f32(sh[3], x3, s), zero));
    }
    for (; i < nq; i += 4) vst1q_f32(dst + i, vmaxnmq_f32(vfmaq_n_f32(t, vld1q_f32(src + i), s), zero));
  }
}

}  // namespace cdops
