// Micro-kernels of the condense_deploy custom ops: one table of function pointers per ISA.
//
// All kernels work on "planes": one channel is a run of floats, position i of channel k at
// base[k * stride + i]. The caller offsets pointers to the first position it wants; a kernel
// processes nq positions (nq a multiple of the ISA's vector length; buffers are sized so that
// reads and writes of whole vectors stay inside them). Micro-kernels never allocate and never
// throw.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cdops {

// out[m][i] = act( bias[m] + sum_k sum_t W[m][k][t] * in[k][i + off_t] ), i in [0, nq)
// with T = 1 (1x1, off = 0) or T = 9 (3x3, off_t = (t/3 - 1)*row + (t%3 - 1)); W [M][K][T] is
// given packed by the same table's pack_weights.
// act: optional max(., 0) (relu), then optional bitwise AND with mask[i] (0 or all ones), so that
// masked positions become exactly +0.0 whatever the sum was.
struct ConvArgs {
  const float* in = nullptr;
  std::ptrdiff_t in_stride = 0;  // floats between input channels
  int K = 0;                     // input channels
  const float* w = nullptr;      // weights packed by pack_weights (for the reference: [M][K][T])
  const float* bias = nullptr;   // [M] or null
  int M = 0;                     // outputs
  float* out = nullptr;
  std::ptrdiff_t out_stride = 0;  // floats between output channels
  int nq = 0;                     // positions (multiple of the vector length)
  const uint32_t* mask = nullptr;  // [nq] or null
  int relu = 0;
  std::ptrdiff_t row = 0;  // floats between image rows (3x3 only)
  // 1x1 only, optional: input k is in_ptrs[k] (instead of in + k*in_stride), used as
  // max(x * bn_scale[k] + bn_shift[k], 0) (the gather fused into the convolution).
  const float* const* in_ptrs = nullptr;
  const float* bn_scale = nullptr;
  const float* bn_shift = nullptr;
};

// out[k][i] = max(in_k[i] * scale[k] + shift[k], 0), i in [0, nq): BN + ReLU of picked channels.
struct GatherArgs {
  const float* const* in = nullptr;  // K channel pointers (already offset)
  const float* scale = nullptr;
  const float* shift = nullptr;
  int K = 0;
  float* out = nullptr;
  std::ptrdiff_t out_stride = 0;
  int nq = 0;
};

// Channel-vectorised convolution (outputs along the vector lanes, pixels in the register tile):
// for small images, where position vectors would be mostly padding. Pixel (r, c), r < H, c < W,
// of input channel k is in[k*in_stride + r*row + c] (taps at (dy-1)*row + (dx-1) around it), of
// output m is out[m*out_stride + r*row + c]; only pixels are written.
// out = act(bias[m] + sum_k sum_t W[m][k][t] * x), act = optional max(., 0). M % vl == 0.
struct CvArgs {
  const float* in = nullptr;
  std::ptrdiff_t in_stride = 0;
  int K = 0;
  const float* w = nullptr;  // packed by pack_cv
  const float* bias = nullptr;
  int M = 0;
  float* out = nullptr;
  std::ptrdiff_t out_stride = 0;
  int H = 0, W = 0;
  std::ptrdiff_t row = 0;
  int relu = 0;
};

struct MicroKernels {
  const char* name;  // "scalar", "sse", "avx2", "avx512", "neon"
  int vl;            // floats per vector
  int mr_max;        // outputs per register tile (largest)
  int mrf_max;       // outputs per register tile of the 1x1 with fused gather (largest)
  void (*conv1x1)(const ConvArgs&);
  void (*conv3x3)(const ConvArgs&);
  void (*bnrelu_gather)(const GatherArgs&);
  // Packs W [M][K][taps] (ONNX order of one group) into dst (M*K*taps floats) for conv1x1/3x3;
  // fused = 1 for a conv1x1 called with in_ptrs (its tiles differ).
  void (*pack_weights)(const float* src, int M, int K, int taps, int fused, float* dst);
  void (*conv1x1_cv)(const CvArgs&);
  void (*conv3x3_cv)(const CvArgs&);
  // Packs W [M][K][taps] (M % vl == 0) for conv*_cv.
  void (*pack_cv)(const float* src, int M, int K, int taps, float* dst);
  // 3x3 for M <= 4 outputs (weights as for conv3x3) over whole image rows: a.nq = H * a.row
  // positions from row 1 column 0; tiles of several rows share their input row loads. May write
  // up to vl - 1 positions past the last row, and reads (masks) that far too.
  void (*conv3x3_rows)(const ConvArgs&);
};

// Per-ISA tables (each defined by one compilation of microkernels_isa.cc; absent ones are null).
const MicroKernels* kernels_scalar();
const MicroKernels* kernels_sse();
const MicroKernels* kernels_avx2();
const MicroKernels* kernels_avx512();
const MicroKernels* kernels_avx512y();  // AVX-512VL at 256 bits (some kernels of the avx512 table)
const MicroKernels* kernels_neon();

// The dispatch point: the best ISA this CPU runs, lowered by CONDENSE_DEPLOY_ISA if set (read
// at each call, so a session created after setting the variable uses it).
const MicroKernels& select_kernels();
// A table of narrower vectors on the same CPU whose kernels some shapes prefer (AVX-512 -> its
// 256-bit build: channel-vectorised kernels for outputs in multiples of 8, the row-band 3x3), or null.
const MicroKernels* half_kernels(const MicroKernels& mk);
// All ISAs this CPU runs, lowest first (for the tests).
int available_kernels(const MicroKernels** out, int max_n);

// Scalar references of each micro-kernel (plain loops, the semantics above; used by the tests).
// ref_conv reads a.w unpacked, in ONNX order [M][K][taps].
void ref_conv(const ConvArgs& a, int taps);
void ref_bnrelu_gather(const GatherArgs& a);
void ref_conv_cv(const CvArgs& a, int taps);  // reads a.w unpacked, [M][K][taps]

}  // namespace cdops
