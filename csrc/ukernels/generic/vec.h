// The generic vector layer of the micro-kernels: one vector type V of the ISA's width (GCC vector
// extensions; plain float for scalar) and the few operations the kernels use.
//
// A kernel file ukernels/<family>/<isa>.cc defines CD_UK_ISA (scalar, sse2, avx2, avx512,
// avx512y, neon) and includes its family's generic header, which includes this one. Everything
// here sits in an anonymous namespace, so each ISA's translation unit keeps its own copy (compiled
// with its own flags) and no inline function leaks between ISAs at link time.
#pragma once

#include <cstdint>
#include <cstring>

#include "ukernels/isa.h"
#include "ukernels/ukernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#ifndef CD_UK_ISA
#error "define CD_UK_ISA (scalar, sse2, avx2, avx512, avx512y, neon) before including a generic kernel"
#endif

#define CD_UK_ID_scalar 1
#define CD_UK_ID_sse2 2
#define CD_UK_ID_avx2 3
#define CD_UK_ID_avx512 4
#define CD_UK_ID_neon 5
#define CD_UK_ID_avx512y 6
#define CD_UK_CAT2(a, b) a##b
#define CD_UK_CAT(a, b) CD_UK_CAT2(a, b)
#define CD_UK_ID CD_UK_CAT(CD_UK_ID_, CD_UK_ISA)
// This ISA's definition of a micro-kernel: CD_UK_FN(f32_conv1x1) is f32_conv1x1_avx2 in avx2.cc.
#define CD_UK_FN(fn) CD_UK_CAT(fn##_, CD_UK_ISA)
// Before a loop over a register tile's rows or vectors: unrolled early, so that GCC keeps the
// accumulator array in registers across the whole tile (without it, the tile's accumulators went
// through the stack before and after the reduction loop: 48 vector stores and loads per 8x3 tile).
#define CD_UK_UNROLL _Pragma("GCC unroll 32")

namespace cdops {
namespace {

constexpr IsaParams kIsa = isa_params::CD_UK_ISA;
constexpr int VL = kIsa.vl, REGS = kIsa.regs, MR_MAX = kIsa.mr_max, MRF_MAX = kIsa.mrf_max;

#if CD_UK_ID == CD_UK_ID_scalar
typedef float V;
typedef uint32_t VU;
inline V splat(float s) { return s; }
inline V zero() { return 0.0f; }
inline V loadu(const float* p) { return *p; }
inline void storeu(float* p, V v) { *p = v; }
inline VU loadmask(const uint32_t* p) { return *p; }
inline V relu(V v) { return v > 0.0f ? v : 0.0f; }
inline V andmask(V v, VU m) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  b &= m;
  std::memcpy(&v, &b, 4);
  return v;
}
inline V fma_(V a, V b, V c) { return a * b + c; }
// max(x, t) / min(x, t), t for a NaN x (the folded BN + ReLU of the fused 1x1)
inline V clamp_lo(V x, V t) { return x > t ? x : t; }
inline V clamp_hi(V x, V t) { return x < t ? x : t; }
inline float lane(V v, int) { return v; }
#else
typedef float V __attribute__((vector_size(VL * 4)));
typedef uint32_t VU __attribute__((vector_size(VL * 4)));
// Broadcast through the ISA's own intrinsic, so that it folds into the FMA as a memory broadcast.
#if CD_UK_ID == CD_UK_ID_avx512
inline V splat(float s) { return (V)_mm512_set1_ps(s); }
#elif CD_UK_ID == CD_UK_ID_avx2 || CD_UK_ID == CD_UK_ID_avx512y
inline V splat(float s) { return (V)_mm256_set1_ps(s); }
#elif CD_UK_ID == CD_UK_ID_sse2
inline V splat(float s) { return (V)_mm_set1_ps(s); }
#elif CD_UK_ID == CD_UK_ID_neon
inline V splat(float s) { return (V)vdupq_n_f32(s); }
#else
#error "unknown CD_UK_ISA"
#endif
inline V zero() { return V{}; }
inline V loadu(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
inline void storeu(float* p, V v) { std::memcpy(p, &v, sizeof(V)); }
inline VU loadmask(const uint32_t* p) {
  VU v;
  std::memcpy(&v, p, sizeof(VU));
  return v;
}
#if CD_UK_ID == CD_UK_ID_neon
// one fmaxnm (the comparison form compiles to fcmgt + and); the same result for -0 and NaN
inline V relu(V v) { return (V)vmaxnmq_f32((float32x4_t)v, vdupq_n_f32(0.0f)); }
// one maxps (the comparison form compiles to a compare and a masked move); maxps returns its second
// operand, +0.0, for -0.0 and NaN, as the comparison form does
#elif CD_UK_ID == CD_UK_ID_avx512
inline V relu(V v) { return (V)_mm512_max_ps((__m512)v, _mm512_setzero_ps()); }
#elif CD_UK_ID == CD_UK_ID_avx2 || CD_UK_ID == CD_UK_ID_avx512y
inline V relu(V v) { return (V)_mm256_max_ps((__m256)v, _mm256_setzero_ps()); }
#elif CD_UK_ID == CD_UK_ID_sse2
inline V relu(V v) { return (V)_mm_max_ps((__m128)v, _mm_setzero_ps()); }
#else
inline V relu(V v) { return v > zero() ? v : zero(); }
#endif
inline V andmask(V v, VU m) { return (V)((VU)v & m); }
inline V fma_(V a, V b, V c) { return a * b + c; }  // contracted to FMA where the ISA has it
// max(x, t) / min(x, t) with t for a NaN x (the folded BN + ReLU of the fused 1x1): maxps / minps
// return their second operand when one is NaN, fmaxnm / fminnm the number
#if CD_UK_ID == CD_UK_ID_neon
inline V clamp_lo(V x, V t) { return (V)vmaxnmq_f32((float32x4_t)x, (float32x4_t)t); }
inline V clamp_hi(V x, V t) { return (V)vminnmq_f32((float32x4_t)x, (float32x4_t)t); }
#elif CD_UK_ID == CD_UK_ID_avx512
inline V clamp_lo(V x, V t) { return (V)_mm512_max_ps((__m512)x, (__m512)t); }
inline V clamp_hi(V x, V t) { return (V)_mm512_min_ps((__m512)x, (__m512)t); }
#elif CD_UK_ID == CD_UK_ID_avx2 || CD_UK_ID == CD_UK_ID_avx512y
inline V clamp_lo(V x, V t) { return (V)_mm256_max_ps((__m256)x, (__m256)t); }
inline V clamp_hi(V x, V t) { return (V)_mm256_min_ps((__m256)x, (__m256)t); }
#elif CD_UK_ID == CD_UK_ID_sse2
inline V clamp_lo(V x, V t) { return (V)_mm_max_ps((__m128)x, (__m128)t); }
inline V clamp_hi(V x, V t) { return (V)_mm_min_ps((__m128)x, (__m128)t); }
#endif
inline float lane(V v, int l) { return v[l]; }
#endif

// max(v, 0) where mask p[i] is all ones, +0.0 where it is 0: relu(v) then andmask, the same bits
// (vmaxps returns its second operand, +0.0, for -0.0 and NaN, as the comparison form does).
#if CD_UK_ID == CD_UK_ID_avx512
inline V relu_masked(V v, const uint32_t* p) {
  const __m512i m = _mm512_loadu_si512(p);
  return (V)_mm512_maskz_max_ps(_mm512_test_epi32_mask(m, m), (__m512)v, _mm512_setzero_ps());
}
#elif CD_UK_ID == CD_UK_ID_avx512y
inline V relu_masked(V v, const uint32_t* p) {
  const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return (V)_mm256_maskz_max_ps(_mm256_test_epi32_mask(m, m), (__m256)v, _mm256_setzero_ps());
}
#else
inline V relu_masked(V v, const uint32_t* p) { return andmask(relu(v), loadmask(p)); }
#endif

}  // namespace
}  // namespace cdops
