// The BN + ReLU of a fused 1x1's inputs folded into its weights and bias, so that the kernel spends
// one clamp per input vector instead of an FMA and a max (ConvArgs::bn_thresh).
//
// For scale s > 0: relu(s*x + b) = s*max(x, t) + b with t = -b/s; for s < 0: s*min(x, t) + b. So
// w*relu(s*x + b) = (w*s)*clamp(x, t) + w*b: w*s goes into the weights, the sum of w*b into the bias.
// Decided here, never in the kernels' loops: s == 0 (the constant relu(b) goes into the bias, the
// input is dropped); t beyond the float range (an input that is always active gets the largest finite
// threshold, -FLT_MAX for max / FLT_MAX for min; one that is never active is dropped). A NaN input clamps to t, which contributes
// ~0, as max(NaN*s + b, 0) = 0 did.
#pragma once

#include <vector>

namespace cdops {

struct BnFold {
  std::vector<int> order;     // the inputs kept, as indices into the group's K: max inputs, then min
  std::vector<float> thresh;  // per kept input (order's order)
  int n_max = 0;              // the first n_max kept inputs clamp with max, the rest with min
  std::vector<float> w;       // [M][order.size()] folded weights in ONNX order (for pack_conv1x1)
  std::vector<float> bias;    // [M] folded bias
};

// Folds one group: w [M][K], bias [M] (or null: zeros), scale and shift [K] of its inputs. Returns
// false (and leaves out unspecified) when a scale or shift is not finite: such a group keeps BN + ReLU
// unfolded (the separate gather), where inf and NaN propagate as the plain arithmetic says.
bool fold_bn_relu(const float* w, const float* bias, int M, int K, const float* scale, const float* shift,
                  BnFold& out);

}  // namespace cdops
