// DenseBlock: a whole converted CondenseNet dense block (see docs/native-ops.md), operator logic
// apart from onnxruntime: attribute checks, weight packing, the per-layer plan and its run.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/common.h"
#include "ukernels/ukernels.h"

namespace cdops {

// The arithmetic the block computes in (attribute `precision`): inputs and outputs are float32
// either way; fp16 keeps the block's activations, weights and sums in IEEE half precision
// (ARMv8.2 FP16 arithmetic; refused at kernel creation on a CPU without it).
enum class Precision { fp32, fp16 };

struct DenseBlockAttrs {
  int64_t growth = 0, mid = 0, groups_1x1 = 0, groups_3x3 = 0;
  std::vector<int64_t> kept;
  Precision precision = Precision::fp32;
};

// Raw (ONNX-layout) parameter tensors, as flat arrays with their element counts.
struct DenseBlockParams {
  const int64_t* index = nullptr;
  std::size_t n_index = 0;
  const float *scale = nullptr, *shift = nullptr, *w1 = nullptr, *b1 = nullptr, *w3 = nullptr;
  std::size_t n_scale = 0, n_shift = 0, n_w1 = 0, n_b1 = 0, n_w3 = 0;
};

// Parameters packed for the micro-kernels (done once per session when they are constant).
struct DenseBlockPacked {
  const MicroKernels* mk = nullptr;  // the ISA the weights are packed for (and run with)
  std::vector<int32_t> index;    // as given, validated >= 0
  std::vector<int64_t> max_idx;  // per layer, checked against C_l at run time
  std::vector<float> scale, shift, b1;
  AlignedBuf<float> w1, w3;      // per layer, per group: packed by mk->pack_conv1x1 / pack_conv3x3
  // BN + ReLU folded into the 1x1 (every BN scale and shift finite; ukernels/bn_fold.h): w1 and
  // w1cv then hold the folded weights, a group's kept inputs in the folded order, which the 1x1
  // reads clamped against their thresholds: fused into its loads (fused: a group's outputs fit one
  // register tile) or through the clamp gather. Not folded: the gather computes BN + ReLU.
  bool folded = false;
  bool fused = false;
  std::vector<int32_t> fold_index;  // per layer, per group: its kept inputs' channels (off_kept layout)
  std::vector<float> fold_thresh;   // their thresholds (same layout)
  std::vector<int32_t> fold_k, fold_nmax;  // per layer * groups_1x1 + group: inputs kept, max inputs
  std::vector<float> fold_b1;       // [L * mid] folded biases, in b1's order
  // Also packed for the channel-vectorised kernels of cv1 / cv3 (mk or its half table), where a
  // group's outputs fill whole vectors (small images use them); null: not available.
  const MicroKernels* cv1 = nullptr;
  const MicroKernels* cv3 = nullptr;
  AlignedBuf<float> w1cv, w3cv;
  std::vector<std::size_t> off_kept, off_w1, off_w3;  // per layer offsets
  // precision fp16: the fp16 table and the parameters in halves (the fp32 ones above stay empty
  // except index, max_idx and the offsets)
  const F16Kernels* f16 = nullptr;
  AlignedBuf<half_t> h_scale, h_shift, h_b1, h_w1, h_w3;
  AlignedBuf<half_t> h_w1cv, h_w3cv;  // channel-vectorised layouts (empty: outputs not a multiple of 8)
};

class DenseBlock {
 public:
  // Throws InvalidArgument on bad attributes, and for precision fp16 on a CPU without FP16
  // arithmetic.
  explicit DenseBlock(const DenseBlockAttrs& a);

  int layers() const { return static_cast<int>(kept_.size()); }
  int64_t growth() const { return growth_; }
  Precision precision() const { return f16_ ? Precision::fp16 : Precision::fp32; }
  // Checks sizes and index values (>= 0) and packs; throws InvalidArgument.
  void pack(const DenseBlockParams& p, const MicroKernels& mk, DenseBlockPacked& out) const;
  // Y [N, C0 + L*growth, H, W] from X [N, C0, H, W]. Throws InvalidArgument if an index value is
  // out of range for C0 (before any work). Thread-safe: uses its own workspace when the cached
  // one is busy.
  void run(const DenseBlockPacked& p, const float* X, int64_t N, int64_t C0, int64_t H, int64_t W, float* Y,
           const ParallelFor& par) const;

 private:
  struct Workspace {
    int64_t N = -1, C = -1, H = -1, W = -1;
    AlignedBuf<float> block, mid;
    AlignedBuf<uint32_t> mask;
    AlignedBuf<half_t> h_block, h_mid;  // precision fp16: the block buffer and 1x1 output in halves
    AlignedBuf<uint16_t> h_mask;
  };
  void prepare(Workspace& ws, int64_t N, int64_t Ctot, int64_t H, int64_t W) const;
  bool fold_1x1(const DenseBlockParams& p, bool fuse, DenseBlockPacked& out) const;
  void pack_f16(const DenseBlockParams& p, DenseBlockPacked& out) const;
  void run_f16(const DenseBlockPacked& p, const float* X, int64_t C0, int64_t H, int64_t W, float* Y,
               const ParallelFor& par) const;

  int64_t growth_, mid_, g1_, g3_;
  std::vector<int64_t> kept_;
  const F16Kernels* f16_ = nullptr;  // precision fp16: the table it runs on
  mutable CachedWorkspace<Workspace> ws_;
};

}  // namespace cdops
