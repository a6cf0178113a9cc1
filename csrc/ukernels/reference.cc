// Scalar references of the micro-kernels: the plain-loop meaning of ConvArgs / GatherArgs
// (double accumulation), used by the C++ micro-kernel tests.
#include <cstring>

#include "ukernels/ukernels.h"

namespace cdops {

void ref_conv(const ConvArgs& a, int taps) {
  for (int m = 0; m < a.M; ++m) {
    for (int i = 0; i < a.nq; ++i) {
      double s = a.bias ? a.bias[m] : 0.0;
      for (int k = 0; k < a.K; ++k) {
        for (int t = 0; t < taps; ++t) {
          const std::ptrdiff_t off = taps == 1 ? 0 : (t / 3 - 1) * a.row + (t % 3 - 1);
          float x = a.in_ptrs ? a.in_ptrs[k][i] : a.in[k * a.in_stride + i + off];
          if (a.in_ptrs) {
            x = x * a.bn_scale[k] + a.bn_shift[k];
            x = x > 0.0f ? x : 0.0f;
          }
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
      const float v = a.in[k][i] * a.scale[k] + a.shift[k];
      a.out[k * a.out_stride + i] = v > 0.0f ? v : 0.0f;
    }
  }
}

}  // namespace cdops
