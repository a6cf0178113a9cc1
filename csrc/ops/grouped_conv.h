// GroupedConv: one grouped 1x1 or 3x3 convolution (stride 1, same padding) on the micro-kernels.
#pragma once

#include <cstdint>

#include "ops/common.h"
#include "ukernels/ukernels.h"

namespace cdops {

struct GroupedConvPacked {
  const MicroKernels* mk = nullptr;  // the ISA the weights are packed for (and run with)
  int64_t O = 0, Cg = 0, k = 0;  // weight shape [O, Cg, k, k]
  AlignedBuf<float> w;           // per group: packed by mk->pack_conv1x1 / pack_conv3x3
  AlignedBuf<float> wcv;         // per group: packed by mk->pack_cv (when O/group % vl == 0)
  bool has_cv = false;
  AlignedBuf<float> b;           // [O] (zeros when absent)
  bool has_bias = false;
};

class GroupedConv {
 public:
  GroupedConv(int64_t group, int64_t relu);  // throws InvalidArgument
  // W: [O, Cg, k, k] (shape given), B: [O] or null.
  void pack(const float* W, const int64_t* wshape, std::size_t wrank, const float* B, int64_t n_bias,
            const MicroKernels& mk, GroupedConvPacked& out) const;
  void run(const GroupedConvPacked& p, const float* X, int64_t N, int64_t C, int64_t H, int64_t W, float* Y,
           const ParallelFor& par) const;

 private:
  void run_1x1_direct(const GroupedConvPacked& p, const float* X, int64_t N, int64_t C, int64_t H, int64_t W,
                      float* Y, const ParallelFor& par) const;
  struct Workspace {
    int64_t N = -1, C = -1, O = -1, H = -1, W = -1;
    AlignedBuf<float> in, out;
  };
  int64_t group_, relu_;
  mutable CachedWorkspace<Workspace> ws_;
};

}  // namespace cdops
