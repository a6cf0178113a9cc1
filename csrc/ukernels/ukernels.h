// The micro-kernel interface: the arguments of each kernel family, the per-ISA table the
// operators call through, and the per-ISA definitions the family files provide.
//
// Families live in ukernels/<family>/<isa>.cc (f32-conv1x1, f32-conv3x3, f32-conv3x3-rows,
// f32-chanvec-conv, f32-bnrelu-gather); each file defines that family's functions for one ISA
// (named <function>_<isa>, declared below) and is compiled with that ISA's flags, chosen by
// CMake from the file name. config.cc assembles one table per ISA and picks one at run time.
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
// given packed by the same table's pack_conv1x1 / pack_conv3x3.
// act: optional max(., 0) (relu), then optional bitwise AND with mask[i] (0 or all ones), so that
// masked positions become exactly +0.0 whatever the sum was.
struct ConvArgs {
  const float* in = nullptr;
  std::ptrdiff_t in_stride = 0;  // floats between input channels
  int K = 0;                     // input channels
  const float* w = nullptr;      // weights packed by pack_conv* (for the reference: [M][K][T])
  const float* bias = nullptr;   // [M] or null
  int M = 0;                     // outputs
  float* out = nullptr;
  std::ptrdiff_t out_stride = 0;  // floats between output channels
  int nq = 0;                     // positions (multiple of the vector length)
  const uint32_t* mask = nullptr;  // [nq] or null
  int relu = 0;
  std::ptrdiff_t row = 0;  // floats between image rows (3x3 only)
  // 1x1 only, optional: input k is in_ptrs[k] (instead of in + k*in_stride), used clamped against
  // bn_thresh[k]: max(x, t) for k < n_max, min(x, t) for the rest; a NaN x gives t. This is the BN +
  // ReLU gather fused into the convolution with its scale and shift folded into the weights and
  // bias (ukernels/bn_fold.h): one operation per input vector.
  const float* const* in_ptrs = nullptr;
  const float* bn_thresh = nullptr;
  int n_max = 0;
};

// out[k][i] = max(in_k[i] * scale[k] + shift[k], 0), i in [0, nq): BN + ReLU of picked channels.
// With thresh set, the same BN + ReLU folded into the 1x1 that reads out (ukernels/bn_fold.h):
// out[k][i] = max(in_k[i], thresh[k]) for k < n_max, min(in_k[i], thresh[k]) for the rest (a NaN
// input gives thresh[k]); scale and shift are unused. One operation per vector instead of an FMA
// and a max; the unfolded form stays for parameters the fold refuses (not finite).
struct GatherArgs {
  const float* const* in = nullptr;  // K channel pointers (already offset)
  const float* scale = nullptr;
  const float* shift = nullptr;
  int K = 0;
  float* out = nullptr;
  std::ptrdiff_t out_stride = 0;
  int nq = 0;
  const float* thresh = nullptr;  // [K] or null (unfolded)
  int n_max = 0;
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
  const char* name;  // "scalar", "sse2", "avx2", "avx512", "avx512y", "neon"
  int vl;            // floats per vector
  int mr_max;        // outputs per register tile (largest)
  int mrf_max;       // outputs per register tile of the 1x1 with fused gather (largest)
  // f32-conv1x1: position-vector 1x1 (optionally with the BN+ReLU gather fused into its loads).
  void (*conv1x1)(const ConvArgs&);
  // Packs W [M][K] (ONNX order of one group) into dst (M*K floats) for conv1x1; fused = 1 for a
  // conv1x1 called with in_ptrs (its tiles differ).
  void (*pack_conv1x1)(const float* src, int M, int K, int fused, float* dst);
  // f32-conv3x3: position-vector 3x3 and its packing of W [M][K][9] (M*K*9 floats).
  void (*conv3x3)(const ConvArgs&);
  void (*pack_conv3x3)(const float* src, int M, int K, float* dst);
  // f32-bnrelu-gather
  void (*bnrelu_gather)(const GatherArgs&);
  // f32-chanvec-conv: channel-vectorised 1x1 and 3x3, and their packing of W [M][K][taps]
  // (M % vl == 0).
  void (*conv1x1_cv)(const CvArgs&);
  void (*conv3x3_cv)(const CvArgs&);
  void (*pack_cv)(const float* src, int M, int K, int taps, float* dst);
  // f32-conv3x3-rows: 3x3 for M <= 4 outputs (NEON: also multiples of 4; weights packed by
  // pack_conv3x3) over whole image rows: a.nq = H * a.row positions from row 1 column 0, columns 0
  // and a.row - 1 the pad columns (a.mask, if set, zero there; without a mask their outputs may be
  // anything); tiles of several rows share their input row loads. May write up to vl - 1 positions
  // past the last row, and reads (masks) that far too.
  void (*conv3x3_rows)(const ConvArgs&);
};

// W [M][K][taps] packed for conv1x1 (taps 1) or conv3x3 (taps 9) of table mk.
inline void pack_weights(const MicroKernels& mk, const float* src, int M, int K, int taps, int fused, float* dst) {
  if (taps == 1)
    mk.pack_conv1x1(src, M, K, fused, dst);
  else
    mk.pack_conv3x3(src, M, K, dst);
}

// The per-ISA definitions of every family (ukernels/<family>/<isa>.cc). An ISA's table in
// config.cc takes its functions from these names.
#define CD_UK_DECLARE_ISA(isa)                                                        \
  void f32_conv1x1_##isa(const ConvArgs&);                                            \
  void f32_conv1x1_pack_##isa(const float* src, int M, int K, int fused, float* dst); \
  void f32_conv3x3_##isa(const ConvArgs&);                                            \
  void f32_conv3x3_pack_##isa(const float* src, int M, int K, float* dst);            \
  void f32_conv3x3_rows_##isa(const ConvArgs&);                                       \
  void f32_chanvec_conv1x1_##isa(const CvArgs&);                                      \
  void f32_chanvec_conv3x3_##isa(const CvArgs&);                                      \
  void f32_chanvec_pack_##isa(const float* src, int M, int K, int taps, float* dst);  \
  void f32_bnrelu_gather_##isa(const GatherArgs&);
CD_UK_DECLARE_ISA(scalar)
#if defined(__x86_64__)
CD_UK_DECLARE_ISA(sse2)
CD_UK_DECLARE_ISA(avx2)
CD_UK_DECLARE_ISA(avx512)
CD_UK_DECLARE_ISA(avx512y)
#endif
#if defined(__aarch64__)
CD_UK_DECLARE_ISA(neon)
#endif

// ---- fp16: ARMv8.2 FP16 arithmetic (DenseBlock precision "fp16") ------------------------------
//
// The same kernels in half precision: activations, weights, bias and BN scale/shift are IEEE
// binary16 and the sums are accumulated in binary16 (8 lanes per 128-bit FMLA: twice the MACs of
// fp32). Families ukernels/f16-<family>/<isa>.cc; only AArch64 CPUs with fphp + asimdhp run them
// (config.h: f16_kernels()). Halves are passed as their bit patterns (half_t): only these kernels
// read or write their values, so the operators need no compiler support for fp16.
using half_t = uint16_t;

// ConvArgs in halves (same meaning). nq is a multiple of 8; mask[i] is 0 or 0xFFFF.
struct F16ConvArgs {
  const half_t* in = nullptr;
  std::ptrdiff_t in_stride = 0;
  int K = 0;
  const half_t* w = nullptr;  // packed by the table's pack_conv1x1 / pack_conv3x3
  const half_t* bias = nullptr;
  int M = 0;
  half_t* out = nullptr;
  std::ptrdiff_t out_stride = 0;
  int nq = 0;
  const uint16_t* mask = nullptr;
  int relu = 0;
  std::ptrdiff_t row = 0;
  // 1x1 only: the fused BN + ReLU gather, input k used as max(x * bn_scale[k] + bn_shift[k], 0)
  // (not folded into the weights as in ConvArgs: fp16 sums of folded biases would lose accuracy)
  const half_t* const* in_ptrs = nullptr;
  const half_t* bn_scale = nullptr;
  const half_t* bn_shift = nullptr;
};

// GatherArgs in halves (nq a multiple of 8).
struct F16GatherArgs {
  const half_t* const* in = nullptr;
  const half_t* scale = nullptr;
  const half_t* shift = nullptr;
  int K = 0;
  half_t* out = nullptr;
  std::ptrdiff_t out_stride = 0;
  int nq = 0;
};

// CvArgs in halves (same meaning; M % 8 == 0).
struct F16CvArgs {
  const half_t* in = nullptr;
  std::ptrdiff_t in_stride = 0;
  int K = 0;
  const half_t* w = nullptr;  // packed by the table's pack_cv
  const half_t* bias = nullptr;
  int M = 0;
  half_t* out = nullptr;
  std::ptrdiff_t out_stride = 0;
  int H = 0, W = 0;
  std::ptrdiff_t row = 0;
  int relu = 0;
};

// Packed fp16 weights are read in whole 8-lane vectors: a buffer of them needs this many halves
// after its last tile.
constexpr int kF16WeightSlack = 8;

struct F16Kernels {
  const char* name;  // "neonfp16"
  int vl;            // halves per vector (8)
  int mrf_max;       // outputs per register tile of the 1x1 with fused gather (largest)
  // f16-conv1x1: position-vector 1x1 (optionally with the fused BN+ReLU gather) and its packing of
  // W [M][K] floats into M*K halves (fused as in MicroKernels::pack_conv1x1).
  void (*conv1x1)(const F16ConvArgs&);
  void (*pack_conv1x1)(const float* src, int M, int K, int fused, half_t* dst);
  // f16-conv3x3: position-vector 3x3 and its packing of W [M][K][9] floats into M*K*9 halves.
  void (*conv3x3)(const F16ConvArgs&);
  void (*pack_conv3x3)(const float* src, int M, int K, half_t* dst);
  // f16-bnrelu-gather
  void (*bnrelu_gather)(const F16GatherArgs&);
  // f16-chanvec-conv: channel-vectorised 1x1 and 3x3 (M % 8 == 0) and their packing of W
  // [M][K][taps] floats into M*K*taps halves.
  void (*conv1x1_cv)(const F16CvArgs&);
  void (*conv3x3_cv)(const F16CvArgs&);
  void (*pack_cv)(const float* src, int M, int K, int taps, half_t* dst);
  // f16-convert: n values float -> half (round to nearest even) and half -> float (exact).
  void (*f32_to_f16)(const float* src, half_t* dst, std::size_t n);
  void (*f16_to_f32)(const half_t* src, float* dst, std::size_t n);
};

#define CD_UK_DECLARE_F16_ISA(isa)                                                     \
  void f16_conv1x1_##isa(const F16ConvArgs&);                                          \
  void f16_conv1x1_pack_##isa(const float* src, int M, int K, int fused, half_t* dst); \
  void f16_conv3x3_##isa(const F16ConvArgs&);                                          \
  void f16_conv3x3_pack_##isa(const float* src, int M, int K, half_t* dst);            \
  void f16_bnrelu_gather_##isa(const F16GatherArgs&);                                  \
  void f16_chanvec_conv1x1_##isa(const F16CvArgs&);                                    \
  void f16_chanvec_conv3x3_##isa(const F16CvArgs&);                                    \
  void f16_chanvec_pack_##isa(const float* src, int M, int K, int taps, half_t* dst);  \
  void f16_convert_f32_f16_##isa(const float* src, half_t* dst, std::size_t n);        \
  void f16_convert_f16_f32_##isa(const half_t* src, float* dst, std::size_t n);
#if defined(__aarch64__)
CD_UK_DECLARE_F16_ISA(neonfp16)
#endif

// Scalar references of each micro-kernel (plain loops, the semantics above; used by the tests).
// ref_conv reads a.w unpacked, in ONNX order [M][K][taps].
void ref_conv(const ConvArgs& a, int taps);
// The unfolded meaning of a fused 1x1 (a.in_ptrs set, a.bn_thresh unused): input k used as
// max(x * scale[k] + shift[k], 0), a.w unpacked [M][K].
void ref_conv1x1_bnrelu(const ConvArgs& a, const float* scale, const float* shift);
void ref_bnrelu_gather(const GatherArgs& a);
void ref_conv_cv(const CvArgs& a, int taps);  // reads a.w unpacked, [M][K][taps]

}  // namespace cdops
