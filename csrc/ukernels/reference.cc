// Scalar references of the micro-kernels: the plain-loop meaning of ConvArgs / GatherArgs
// (double accumulation), used by the C++ micro-kernel tests.
#include <cstring>

#include "ukernels/ukernels.h"

namespace cdops {

namespace {
// ref_conv, with input k of a fused 1x1 (in_ptrs) mapped through act(x, k) first.
template <class Act>
void conv_with(const ConvArgs& a, int taps, Act act) {
  for (int m = 0; m < a.M; ++m) {
    for (int i = 0; i < a.nq; ++i) {
      double s = a.bias ? a.bias[m] : 0.0;
      for (int k = 0; k < a.K; ++k) {
        for (int t = 0; t < taps; ++t) {
          const std::ptrdiff_t off = taps == 1 ? 0 : (t / 3 - 1) * a.row + (t % 3 - 1);
          const float x = a.in_ptrs ? act(a.in_ptrs[k][i], k) : a.in[k * a.in_stride + i + off];
          s += static_cast<double>(a.w[(static_cast<std::ptrdiff_t>(m) * a.K + k) * taps + t]) * x;
        }
      }
      float v = static_cast<float>(s);
      if (a.relu && !(v > 0.0f)) v = 0.0f;
      if (a.mask) {
        uint32_t b;
        std::memcpy(&b, &v, 4);
        b &= a.mask[i];
        std::memcpy(&v, &b, 4);
      }
      a.out[m * a.out_stride + i] = v;
    }
  }
}
}  // namespace

void ref_conv(const ConvArgs& a, int taps) {
  conv_with(a, taps, [&](float x, int k) {
    const float t = a.bn_thresh[k];
    return k < a.n_max ? (x > t ? x : t) : (x < t ? x : t);
  });
}

void ref_conv1x1_bnrelu(const ConvArgs& a, const float* scale, const float* shift) {
  conv_with(a, 1, [&](float x, int k) {
    const float v = x * scale[k] + shift[k];
    return v > 0.0f ? v : 0.0f;
  });
}

void ref_conv_cv(const CvArgs& a, int taps) {
  for (int m = 0; m < a.M; ++m)
    for (int r = 0; r < a.H; ++r)
      for (int c = 0; c < a.W; ++c) {
        const std::ptrdiff_t q = r * a.row + c;
        double s = a.bias ? a.bias[m] : 0.0;
        for (int k = 0; k < a.K; ++k)
          for (int t = 0; t < taps; ++t) {
            const std::ptrdiff_t off = taps == 1 ? 0 : (t / 3 - 1) * a.row + (t % 3 - 1);
            s += static_cast<double>(a.w[(static_cast<std::ptrdiff_t>(m) * a.K + k) * taps + t]) *
                 a.in[k * a.in_stride + q + off];
          }
        float v = static_cast<float>(s);
        if (a.relu && !(v > 0.0f)) v = 0.0f;
        a.out[m * a.out_stride + q] = v;
      }
}

void ref_bnrelu_gather(const GatherArgs& a) {
  for (int k = 0; k < a.K; ++k) {
    for (int i = 0; i < a.nq; ++i) {
      const float x = a.in[k][i];
      float v;
      if (a.thresh) {
        const float t = a.thresh[k];
        v = k < a.n_max ? (x > t ? x : t) : (x < t ? x : t);
      } else {
        v = x * a.scale[k] + a.shift[k];
        v = v > 0.0f ? v : 0.0f;
      }
      a.out[k * a.out_stride + i] = v;
    }
  }
}

}  // namespace cdops
