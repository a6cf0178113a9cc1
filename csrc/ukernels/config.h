// The micro-kernel configuration: which ISAs this CPU runs (feature detection), the per-ISA
// tables, and the plan, which kernel and tile each shape gets. Every shape threshold the
// operators use is here (ops/ never names an ISA or a threshold).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ukernels/ukernels.h"

namespace cdops {

// ---- tables and feature detection --------------------------------------------------------------

// All ISAs this CPU runs, lowest first (for the tests and condense_deploy_isas()).
int available_kernels(const MicroKernels** out, int max_n);
// The best ISA this CPU runs, lowered by CONDENSE_DEPLOY_ISA if set (read at each call, so a
// session created after setting the variable uses it).
const MicroKernels& select_kernels();
// A table of narrower vectors on the same CPU whose kernels some shapes prefer (AVX-512 -> its
// 256-bit build: channel-vectorised kernels for outputs in multiples of 8, the row-band 3x3), or null.
const MicroKernels* half_kernels(const MicroKernels& mk);

// The fp16 table (ARMv8.2 FP16 arithmetic), or null when this CPU has none (every x86_64 CPU, and
// AArch64 CPUs without fphp + asimdhp, e.g. Cortex-A72). CONDENSE_DEPLOY_ISA does not change it.
const F16Kernels* f16_kernels();
// Why f16_kernels() is null here, for an operator's error message ("" when it is not null).
const char* f16_unavailable_reason();

// ---- AArch64: CPU features and the NEON tile class ---------------------------------------------

// What an AArch64 CPU runs, from the kernel's HWCAP / HWCAP2 (getauxval), and which core it is
// (MIDR_EL1, which Linux lets user space read when HWCAP_CPUID is set). All false / 0 elsewhere.
struct ArmFeatures {
  bool asimd = false;    // Advanced SIMD (NEON): the neon table needs it
  bool fp16 = false;     // FP16 arithmetic, scalar and vector (fphp + asimdhp; ARMv8.2, e.g. A76)
  bool dotprod = false;  // SDOT/UDOT (asimddp)
  bool i8mm = false;     // int8 matrix multiply (HWCAP2 i8mm)
  unsigned midr = 0;     // MIDR_EL1, 0 when unknown
};
const ArmFeatures& arm_features();

// The register tiles of the NEON position-vector kernels (ukernels/neon/conv.h) for one class of
// core: the largest number of outputs per tile of the 1x1 and the 3x3. Chosen once per process,
// so packing and running agree: CONDENSE_DEPLOY_NEON_TILES=narrow|wide if set, else from the core
// (MIDR part: Cortex-A35/A53/A55/A57/A72/A73/A510 narrow; Cortex-A76/A77/A78/X1 and later,
// Neoverse N1/N2/V1/V2 wide), else from FP16 arithmetic (the ARMv8.2 cores are the wide ones).
struct NeonTiles {
  const char* core_class;  // "narrow" (one 128-bit FMLA per cycle) or "wide" (two)
  int mr_max_1x1;
  int mr_max_3x3;
};
const NeonTiles& neon_tiles();
// "asimd fp16 dotprod i8mm midr=0x414fd0c1": the features found (for messages and the tests).
const char* cpu_features_text();

// ---- the plan ----------------------------------------------------------------------------------
namespace plan {

// Widest images on which the channel-vectorised kernels replace the position-vectorised ones
// (measured: at 7x7 they do 54-58 useful G MAC/s against 44; at 14x14 the 3x3 55 against 50, the
// 1x1 the same). The half table's channel-vectorised kernels only up to kChanvec1x1MaxW: at 14x14
// its 8-output tiles lost to the position vectors (2.04 against 1.86 ms for block 4 of C=G=8).
constexpr int64_t kChanvec1x1MaxW = 8;
constexpr int64_t kChanvec3x3MaxW = 16;
// NEON's channel-vectorised 1x1 up to 16 wide (ARM cost model, CondenseNet-74 C=G=8: at 14x14 it
// saves 1.6 M of 103 M modeled cycles on cortex-a72 and 1.1 M of 57 M on neoverse-n1 against the
// gather + position vectors; at 28x28 it only ties the fused 1x1, and NEON's 3x3 keeps 16: its
// channel vectors at 28x28 cost 10.5 M cycles against 8.2 M).
constexpr int64_t kChanvec1x1MaxWNeon = 16;
// The 512-bit table's channel-vectorised 1x1 up to 16 wide, since its stores are whole vectors
// (generic/store_columns.h): at 14x14 position vectors compute 16 of 14 columns. C=G=4 block 4
// (64 outputs per group) went from 3.65-3.69 to 3.33-3.50 ms; C=G=8 block 4 (32) no change beyond
// the noise (2.0-2.4 ms either way). Micro-kernels, useful G MAC/s: 50-55 against 49-51 (64 outputs).
constexpr int64_t kChanvec1x1MaxWAvx512 = 16;
// The row-band 3x3 replaces the position-vectorised one for up to kRowsMaxOutputs outputs per
// group on images at least kRowsMinW wide (measured at 112 and 56: 44-48 G MAC/s against 33-37).
constexpr int64_t kRowsMaxOutputs = 2;
// NEON's row bands for up to 4 outputs per group, or a multiple of 4 up to kRowsMaxOutputsNeon
// (tiles of 4), in place of the position vectors, whose tiles compute the 2 pad columns of each
// row. ARM cost model, neoverse-n1, with 4 outputs (C=G=8 at 28x28, C=G=4 at 56x56) and 8 (C=G=4 at
// 28x28): C=G=8 50.9 against 52.2 M cycles, C=G=4 84.7 against 86.7 M (with the other row-band
// changes of that step); 16 outputs do not occur at these widths in CondenseNet-74.
constexpr int64_t kRowsMaxOutputsNeon = 16;
constexpr int64_t kRowsMinW = 24;
// Work items of the position-vector kernels: about kChunkMacs1x1 / K (1x1) or kChunkMacs3x3 / K
// (3x3, K input channels per group) positions each, at least kChunkMinPositions.
constexpr std::ptrdiff_t kChunkMacs1x1 = 4096, kChunkMacs3x3 = 8192, kChunkMinPositions = 64;
// Bands of a layer (band_positions): only where mid is larger than about an L2 cache (measured on
// AMD EPYC, 1 MB L2: the 112x112 blocks, C=G=4 and C=G=8, 9-13 % faster with bands of 48 K floats;
// the 56x56 and 28x28 blocks, mid 0.9 and 0.5 MB, no faster or slower).
constexpr std::ptrdiff_t kBandFloats = 48 * 1024, kBandMinMidFloats = 256 * 1024;

// The channel-vectorised table for M outputs per group: mk where M fills its vectors, else its
// half table (when half is allowed and M fills those), else null.
const MicroKernels* chanvec_table(const MicroKernels& mk, int64_t M, bool allow_half);
// Whether a channel-vectorised 1x1 / 3x3 of table cv (from chanvec_table, may be null) runs on
// images W wide (mk: the operator's main table).
bool use_chanvec_1x1(const MicroKernels* cv, int64_t W);
bool use_chanvec_3x3(const MicroKernels& mk, const MicroKernels* cv, int64_t W);
// The table whose row-band 3x3 runs M outputs per group on images W wide, or null (position
// vectors or channel vectors instead).
const MicroKernels* rows_3x3_table(const MicroKernels& mk, int64_t M, int64_t W, bool chanvec);
// Whether a group's M 1x1 outputs are one register tile with the BN+ReLU gather fused into its
// loads (the packing and the run must agree).
inline bool fuse_gather(const MicroKernels& mk, int64_t M) { return M <= mk.mrf_max; }
inline bool fuse_gather(const F16Kernels& hk, int64_t M) { return M <= hk.mrf_max; }
// precision fp16: whether the fp16 table's channel-vectorised 1x1 / 3x3 runs M outputs per group on
// images W wide (M a multiple of its 8 lanes; the fp32 widths).
bool use_f16_chanvec_1x1(const F16Kernels& hk, int64_t M, int64_t W);
bool use_f16_chanvec_3x3(const F16Kernels& hk, int64_t M, int64_t W);
// Positions per band when a layer's 1x1 and 3x3 alternate over bands of the image: Qr (one band)
// unless the layer's mid planes (mid_floats) exceed kBandMinMidFloats, else about
// kBandFloats / floats_per_position (block-buffer inputs, mid and new channels of a position), a
// multiple of 16.
std::ptrdiff_t band_positions(std::ptrdiff_t Qr, int64_t floats_per_position, int64_t mid_floats);
// Positions per work item of a 1x1 (taps 1) or 3x3 (taps 9) over Qr positions, K inputs per group.
int chunk(std::ptrdiff_t Qr, int64_t K, int taps);

}  // namespace plan

// Splits Qr positions into chunks (multiples of 16) of at most `target` positions.
int chunk_positions(std::ptrdiff_t Qr, std::ptrdiff_t target);

}  // namespace cdops
