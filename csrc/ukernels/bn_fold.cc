// fold_bn_relu: see bn_fold.h. Sums in double, so that the folded bias rounds once.
#include "ukernels/bn_fold.h"

#include <cmath>
#include <cstddef>
#include <limits>

namespace cdops {

bool fold_bn_relu(const float* w, const float* bias, int M, int K, const float* scale, const float* shift,
                  BnFold& out) {
  for (int k = 0; k < K; ++k)
    if (!std::isfinite(scale[k]) || !std::isfinite(shift[k])) return false;
  std::vector<double> b(static_cast<std::size_t>(M));
  for (int m = 0; m < M; ++m) b[m] = bias ? bias[m] : 0.0;
  std::vector<int> lo, hi;  // inputs clamped with max (s > 0) and with min (s < 0)
  std::vector<float> t_lo, t_hi;
  const float inf = std::numeric_limits<float>::infinity(), kMax = std::numeric_limits<float>::max();
  for (int k = 0; k < K; ++k) {
    const float s = scale[k], sh = shift[k];
    if (s == 0.0f) {  // relu(b) whatever x is
      if (sh > 0.0f)
        for (int m = 0; m < M; ++m) b[m] += static_cast<double>(w[static_cast<std::ptrdiff_t>(m) * K + k]) * sh;
      continue;
    }
    // +-inf when |b/s| overflows: never active (dropped), or always active (the largest finite
    // threshold: exact for every finite x, and a NaN x still gives a finite sum)
    const float t = static_cast<float>(-static_cast<double>(sh) / s);
    if (s > 0.0f) {
      if (t == inf) continue;  // s*x + b < 0 for every finite x
      lo.push_back(k);
      t_lo.push_back(t == -inf ? -kMax : t);
    } else {
      if (t == -inf) continue;
      hi.push_back(k);
      t_hi.push_back(t == inf ? kMax : t);
    }
    for (int m = 0; m < M; ++m) b[m] += static_cast<double>(w[static_cast<std::ptrdiff_t>(m) * K + k]) * sh;
  }
  out.n_max = static_cast<int>(lo.size());
  out.order = lo;
  out.order.insert(out.order.end(), hi.begin(), hi.end());
  out.thresh = t_lo;
  out.thresh.insert(out.thresh.end(), t_hi.begin(), t_hi.end());
  const std::size_t Kf = out.order.size();
  out.w.resize(static_cast<std::size_t>(M) * Kf);
  out.bias.resize(static_cast<std::size_t>(M));
  for (int m = 0; m < M; ++m) {
    for (std::size_t k = 0; k < Kf; ++k) {
      const int src = out.order[k];
      out.w[m * Kf + k] = w[static_cast<std::ptrdiff_t>(m) * K + src] * scale[src];
    }
    out.bias[m] = static_cast<float>(b[m]);
  }
  return true;
}

}  // namespace cdops
