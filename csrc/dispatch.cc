// The one dispatch point: which micro-kernel table this process uses.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kernels/microkernels.h"

namespace cdops {

#if !defined(CD_HAVE_X86)
const MicroKernels* kernels_sse() { return nullptr; }
const MicroKernels* kernels_avx2() { return nullptr; }
const MicroKernels* kernels_avx512() { return nullptr; }
const MicroKernels* kernels_avx512y() { return nullptr; }
#endif
#if !defined(CD_HAVE_NEON)
const MicroKernels* kernels_neon() { return nullptr; }
#endif

int available_kernels(const MicroKernels** out, int max_n) {
  int n = 0;
  auto add = [&](const MicroKernels* k) {
    if (k && n < max_n) out[n++] = k;
  };
  add(kernels_scalar());
#if defined(CD_HAVE_X86)
  add(kernels_sse());  // SSE2 is part of x86_64
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) add(kernels_avx2());
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
    add(kernels_avx512());
#endif
#if defined(CD_HAVE_NEON)
  add(kernels_neon());  // Advanced SIMD is part of AArch64
#endif
  return n;
}

const MicroKernels* half_kernels(const MicroKernels& mk) {
  if (&mk == kernels_avx512()) return kernels_avx512y();  // chosen only where AVX-512VL runs
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
