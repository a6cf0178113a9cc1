// The tables of every ISA built for this architecture, CPU feature detection, the choice of a
// table (CONDENSE_DEPLOY_ISA), and the plan functions of config.h.
//
// A new ISA (or a per-core variant, e.g. a NEON build tuned for another core) is one more table
// below, built from its ukernels/<family>/<isa>.cc files, and one more line in
// available_kernels() saying when the CPU runs it.
#include "ukernels/config.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ukernels/isa.h"

namespace cdops {

namespace {

#define CD_UK_TABLE(isa)                                                                                     \
  MicroKernels {                                                                                             \
    isa_params::isa.name, isa_params::isa.vl, isa_params::isa.mr_max, isa_params::isa.mrf_max,               \
        f32_conv1x1_##isa, f32_conv1x1_pack_##isa, f32_conv3x3_##isa, f32_conv3x3_pack_##isa,                \
        f32_bnrelu_gather_##isa, f32_chanvec_conv1x1_##isa, f32_chanvec_conv3x3_##isa, f32_chanvec_pack_##isa, \
        f32_conv3x3_rows_##isa                                                                               \
  }

const MicroKernels kScalar = CD_UK_TABLE(scalar);
#if defined(__x86_64__)
const MicroKernels kSse2 = CD_UK_TABLE(sse2);
const MicroKernels kAvx2 = CD_UK_TABLE(avx2);
const MicroKernels kAvx512 = CD_UK_TABLE(avx512);
const MicroKernels kAvx512y = CD_UK_TABLE(avx512y);
#endif
#if defined(__aarch64__)
const MicroKernels kNeon = CD_UK_TABLE(neon);
#endif

}  // namespace

int available_kernels(const MicroKernels** out, int max_n) {
  int n = 0;
  auto add = [&](const MicroKernels* k) {
    if (k && n < max_n) out[n++] = k;
  };
  add(&kScalar);
#if defined(__x86_64__)
  add(&kSse2);  // SSE2 is part of x86_64
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) add(&kAvx2);
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
    add(&kAvx512);
#endif
#if defined(__aarch64__)
  add(&kNeon);  // Advanced SIMD is part of AArch64
#endif
  return n;
}

const MicroKernels* half_kernels(const MicroKernels& mk) {
#if defined(__x86_64__)
  if (&mk == &kAvx512) return &kAvx512y;  // chosen only where AVX-512VL runs
#endif
  return nullptr;
}

const MicroKernels& select_kernels() {
  const MicroKernels* avail[8];
  const int n = available_kernels(avail, 8);
  const MicroKernels* pick = avail[n - 1];
  const char* want = std::getenv("CONDENSE_DEPLOY_ISA");
  if (want && *want) {
    bool found = false;
    for (int i = 0; i < n; ++i) {
      if (std::strcmp(avail[i]->name, want) == 0) {
        pick = avail[i];
        found = true;
      }
    }
    if (!found)
      std::fprintf(stderr, "condense_deploy ops: CONDENSE_DEPLOY_ISA=%s is not available here; using %s\n",
                   want, pick->name);
  }
  const char* verbose = std::getenv("CONDENSE_DEPLOY_VERBOSE");
  if (verbose && *verbose && std::strcmp(verbose, "0") != 0)
    std::fprintf(stderr, "condense_deploy ops: ISA %s\n", pick->name);
  return *pick;
}

int chunk_positions(std::ptrdiff_t Qr, std::ptrdiff_t target) {
  auto round_up = [](std::ptrdiff_t x, std::ptrdiff_t m) { return (x + m - 1) / m * m; };
  if (target < 16) target = 16;
  target = round_up(target, 16);
  if (target >= Qr) return static_cast<int>(Qr);
  // balance: equal-ish chunks
  const std::ptrdiff_t n = (Qr + target - 1) / target;
  return static_cast<int>(round_up((Qr + n - 1) / n, 16));
}

namespace plan {

const MicroKernels* chanvec_table(const MicroKernels& mk, int64_t M, bool allow_half) {
  if (M % mk.vl == 0) return &mk;
  const MicroKernels* half = allow_half ? half_kernels(mk) : nullptr;
  if (half && M % half->vl == 0) return half;
  return nullptr;
}

bool use_chanvec_1x1(const MicroKernels* cv, int64_t W) { return cv && W <= kChanvec1x1MaxW; }

bool use_chanvec_3x3(const MicroKernels& mk, const MicroKernels* cv, int64_t W) {
  return cv && W <= (cv == &mk ? kChanvec3x3MaxW : kChanvec1x1MaxW);
}

const MicroKernels* rows_3x3_table(const MicroKernels& mk, int64_t M, int64_t W, bool chanvec) {
  if (chanvec || M > kRowsMaxOutputs || W < kRowsMinW) return nullptr;
  const MicroKernels* half = half_kernels(mk);  // the 256-bit build on AVX-512
  return half ? half : &mk;
}

int chunk(std::ptrdiff_t Qr, int64_t K, int taps) {
  const std::ptrdiff_t macs = taps == 1 ? kChunkMacs1x1 : kChunkMacs3x3;
  return chunk_positions(Qr, std::max<std::ptrdiff_t>(kChunkMinPositions, macs / K));
}

}  // namespace plan

}  // namespace cdops

// Exported for ctypes: the ISA a kernel created now would use.
extern "C" __attribute__((visibility("default"))) const char* condense_deploy_isa(void) {
  return cdops::select_kernels().name;
}

// Exported for ctypes: the ISAs this CPU runs, comma-separated, lowest first.
extern "C" __attribute__((visibility("default"))) const char* condense_deploy_isas(void) {
  static char buf[128];
  const cdops::MicroKernels* avail[8];
  const int n = cdops::available_kernels(avail, 8);
  buf[0] = 0;
  for (int i = 0; i < n; ++i) {
    if (i) std::strcat(buf, ",");
    std::strcat(buf, avail[i]->name);
  }
  return buf;
}
