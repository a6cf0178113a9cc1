// The tables of every ISA built for this architecture, CPU feature detection, the choice of a
// table (CONDENSE_DEPLOY_ISA), and the plan functions of config.h.
//
// A new ISA (or a per-core variant, e.g. a NEON build tuned for another core) is one more table
// below, built from its ukernels/<family>/<isa>.cc files, and one more line in
// available_kernels() saying when the CPU runs it.
#include "ukernels/config.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ukernels/isa.h"

#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

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
const F16Kernels kNeonFp16{"neonfp16",
                           8,
                           16,
                           f16_conv1x1_neonfp16,
                           f16_conv1x1_pack_neonfp16,
                           f16_conv3x3_neonfp16,
                           f16_conv3x3_pack_neonfp16,
                           f16_bnrelu_gather_neonfp16,
                           f16_chanvec_conv1x1_neonfp16,
                           f16_chanvec_conv3x3_neonfp16,
                           f16_chanvec_pack_neonfp16,
                           f16_convert_f32_f16_neonfp16,
                           f16_convert_f16_f32_neonfp16};
#endif

}  // namespace

// ---- AArch64: CPU features and the NEON tile class ---------------------------------------------

namespace {

#if defined(__aarch64__)
// Linux's arm64 HWCAP bits (uapi asm/hwcap.h), spelled out so that an old libc's headers do.
constexpr unsigned long kHwcapAsimd = 1UL << 1, kHwcapFphp = 1UL << 9, kHwcapAsimdhp = 1UL << 10,
                        kHwcapCpuid = 1UL << 11, kHwcapAsimddp = 1UL << 20;
constexpr unsigned long kHwcap2I8mm = 1UL << 13;
constexpr unsigned long kAtHwcap2 = 26;  // AT_HWCAP2
#endif

ArmFeatures probe_arm() {
  ArmFeatures f;
#if defined(__aarch64__)
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(kAtHwcap2);
  f.asimd = (hw & kHwcapAsimd) != 0;
  f.fp16 = (hw & kHwcapFphp) && (hw & kHwcapAsimdhp);
  f.dotprod = (hw & kHwcapAsimddp) != 0;
  f.i8mm = (hw2 & kHwcap2I8mm) != 0;
  if (hw & kHwcapCpuid) {  // the kernel emulates the read for user space (so does qemu-user)
    uint64_t midr = 0;
    asm volatile("mrs %0, midr_el1" : "=r"(midr));
    f.midr = static_cast<unsigned>(midr);
  }
#endif
  return f;
}

// Tiles per core class (llvm-mca, ukernels/neon/conv.h's inner loops: the 1x1 runs at 99.5 % of the
// modeled peak with 4x6 and with 8x3 tiles on both cores; the 3x3 at 99 / 96 % (cortex-a72 /
// neoverse-n1) with 4x6 against 95 / 88 % with 8x3). The wide class takes the taller 1x1 tile,
// which loads 5 registers per 24 FMLA instead of 7, as XNNPACK takes 6x8 over 4x8 on the A76.
constexpr NeonTiles kNarrowTiles{"narrow", 4, 4};
constexpr NeonTiles kWideTiles{"wide", 8, 4};

// Arm Ltd. cores by MIDR part number: 1 wide (two 128-bit FMLA pipes), 0 narrow, -1 unknown.
int arm_core_class(unsigned midr) {
  if (((midr >> 24) & 0xff) != 0x41) return -1;
  switch ((midr >> 4) & 0xfff) {
    case 0xd03: case 0xd04: case 0xd05: case 0xd07: case 0xd08: case 0xd09: case 0xd46:
      return 0;  // Cortex-A53, A35, A55, A57, A72, A73, A510
    case 0xd0b: case 0xd0c: case 0xd0d: case 0xd0e: case 0xd40: case 0xd41: case 0xd44: case 0xd47:
    case 0xd48: case 0xd49: case 0xd4b: case 0xd4d: case 0xd4e: case 0xd4f: case 0xd81: case 0xd82:
      return 1;  // Cortex-A76, Neoverse-N1, A77, A76AE, Neoverse-V1, A78, X1, A710, X2, Neoverse-N2,
                 // A78C, A715, X3, Neoverse-V2, A720, X4
    default:
      return -1;
  }
}

const NeonTiles& pick_neon_tiles() {
  const char* want = std::getenv("CONDENSE_DEPLOY_NEON_TILES");
  if (want && *want) {
    if (std::strcmp(want, "narrow") == 0) return kNarrowTiles;
    if (std::strcmp(want, "wide") == 0) return kWideTiles;
    std::fprintf(stderr, "condense_deploy ops: CONDENSE_DEPLOY_NEON_TILES=%s is not narrow or wide; ignored\n", want);
  }
  const ArmFeatures& f = arm_features();
  const int cls = arm_core_class(f.midr);
  if (cls >= 0) return cls ? kWideTiles : kNarrowTiles;
  return f.fp16 ? kWideTiles : kNarrowTiles;  // ARMv8.2 FP16 arrived with the wide cores
}

}  // namespace

const ArmFeatures& arm_features() {
  static const ArmFeatures f = probe_arm();
  return f;
}

const NeonTiles& neon_tiles() {
  static const NeonTiles& t = pick_neon_tiles();  // once: packing and running must agree
  return t;
}

// "asimd fp16 dotprod i8mm midr=0x414fd0c1": the features this CPU has (none off AArch64).
const char* cpu_features_text() {
  static char buf[96];
  const ArmFeatures& f = arm_features();
  std::snprintf(buf, sizeof buf, "%s%s%s%smidr=0x%08x", f.asimd ? "asimd " : "", f.fp16 ? "fp16 " : "",
                f.dotprod ? "dotprod " : "", f.i8mm ? "i8mm " : "", f.midr);
  return buf;
}

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
  if (arm_features().asimd) add(&kNeon);  // HWCAP asimd: every AArch64 Linux CPU we know has it
#endif
  return n;
}

const F16Kernels* f16_kernels() {
#if defined(__aarch64__)
  if (arm_features().fp16) return &kNeonFp16;
#endif
  return nullptr;
}

const char* f16_unavailable_reason() {
  if (f16_kernels()) return "";
#if defined(__aarch64__)
  static char buf[160];
  std::snprintf(buf, sizeof buf, "this CPU has: %s", cpu_features_text());
  return buf;
#elif defined(__x86_64__)
  return "this is an x86_64 CPU (the fp16 kernels are for AArch64)";
#else
  return "this CPU has none";
#endif
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
  // "sse" is how this table was once spelled: still accepted for sse2
  if (want && std::strcmp(want, "sse") == 0) want = "sse2";
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
  if (verbose && *verbose && std::strcmp(verbose, "0") != 0) {
#if defined(__aarch64__)
    std::fprintf(stderr, "condense_deploy ops: ISA %s (%s; NEON tiles %s)\n", pick->name, cpu_features_text(),
                 neon_tiles().core_class);
#else
    std::fprintf(stderr, "condense_deploy ops: ISA %s\n", pick->name);
#endif
  }
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

bool use_chanvec_1x1(const MicroKernels* cv, int64_t W) {
#if defined(__aarch64__)
  if (cv == &kNeon) return W <= kChanvec1x1MaxWNeon;
#endif
#if defined(__x86_64__)
  if (cv == &kAvx512) return W <= kChanvec1x1MaxWAvx512;
#endif
  return cv && W <= kChanvec1x1MaxW;
}

bool use_chanvec_3x3(const MicroKernels& mk, const MicroKernels* cv, int64_t W) {
  return cv && W <= (cv == &mk ? kChanvec3x3MaxW : kChanvec1x1MaxW);
}

const MicroKernels* rows_3x3_table(const MicroKernels& mk, int64_t M, int64_t W, bool chanvec) {
#if defined(__aarch64__)
  if (&mk == &kNeon)  // NEON's row bands take tiles of up to 4 outputs (neon_tiles().mr_max_3x3)
    return (chanvec || W < kRowsMinW || !(M <= 4 || M % 4 == 0) || M > kRowsMaxOutputsNeon) ? nullptr : &mk;
#endif
  if (chanvec || M > kRowsMaxOutputs || W < kRowsMinW) return nullptr;
  const MicroKernels* half = half_kernels(mk);  // the 256-bit build on AVX-512
  return half ? half : &mk;
}

bool use_f16_chanvec_1x1(const F16Kernels& hk, int64_t M, int64_t W) {
  return M % hk.vl == 0 && W <= kChanvec1x1MaxW;
}

bool use_f16_chanvec_3x3(const F16Kernels& hk, int64_t M, int64_t W) {
  return M % hk.vl == 0 && W <= kChanvec3x3MaxW;
}

std::ptrdiff_t band_positions(std::ptrdiff_t Qr, int64_t floats_per_position, int64_t mid_floats) {
  if (mid_floats < kBandMinMidFloats) return Qr;
  const std::ptrdiff_t b = std::max<std::ptrdiff_t>(16, kBandFloats / std::max<int64_t>(1, floats_per_position)) / 16 * 16;
  return std::min(b, Qr);
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

// Exported for ctypes: what the CPU runs and the NEON tile class, e.g. "asimd fp16 dotprod
// midr=0x414fd0c1 tiles=wide" on AArch64, "" elsewhere.
extern "C" __attribute__((visibility("default"))) const char* condense_deploy_cpu_features(void) {
#if defined(__aarch64__)
  static char buf[128];
  std::snprintf(buf, sizeof buf, "%s tiles=%s", cdops::cpu_features_text(), cdops::neon_tiles().core_class);
  return buf;
#else
  return "";
#endif
}
