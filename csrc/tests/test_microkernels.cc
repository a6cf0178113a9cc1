// Micro-kernel unit test: every ISA this CPU runs against the scalar references, on random data
// with odd sizes (all M, K and position counts that exercise full and remainder tiles).
// Prints one line per ISA; exit code 0 when all pass.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "ukernels/config.h"

using namespace cdops;

namespace {

std::mt19937 rng(1234);
float uni(float a, float b) { return std::uniform_real_distribution<float>(a, b)(rng); }

struct Case {
  int K, M, nq, row, taps, relu, bias, mask, fused;  // fused: 1x1 with in_ptrs + BN/ReLU
};

bool check_conv(const MicroKernels& mk, const Case& c, double* worst) {
  const int margin = c.row + 32;
  const int in_stride = c.nq + 2 * margin;
  std::vector<float> in(static_cast<std::size_t>(c.K) * in_stride), w(static_cast<std::size_t>(c.K) * c.taps * c.M),
      bias(c.M);
  for (auto& v : in) v = uni(-1, 1);
  for (auto& v : w) v = uni(-1, 1) / std::sqrt(float(c.K * c.taps));
  for (auto& v : bias) v = uni(-0.5f, 0.5f);
  std::vector<uint32_t> mask(c.nq);
  for (int i = 0; i < c.nq; ++i) mask[i] = (i % 7 == 3) ? 0u : 0xFFFFFFFFu;
  const int out_stride = c.nq + 16;
  std::vector<float> got(static_cast<std::size_t>(c.M) * out_stride + 16, 7.0f), want(got);
  ConvArgs a;
  a.in = in.data() + margin;
  a.in_stride = in_stride;
  a.K = c.K;
  std::vector<float> packed(w.size());
  pack_weights(mk, w.data(), c.M, c.K, c.taps, c.fused, packed.data());
  a.w = w.data();
  a.bias = c.bias ? bias.data() : nullptr;
  a.M = c.M;
  a.out_stride = out_stride;
  a.nq = c.nq;
  a.mask = c.mask ? mask.data() : nullptr;
  a.relu = c.relu;
  a.row = c.row;
  std::vector<const float*> ptrs(c.K);
  std::vector<float> scale(c.K), shift(c.K);
  if (c.fused) {
    for (int k = 0; k < c.K; ++k) {
      ptrs[k] = in.data() + margin + static_cast<std::ptrdiff_t>((k * 7) % c.K) * in_stride;  // any order
      scale[k] = uni(0.5f, 1.5f);
      shift[k] = uni(-0.3f, 0.3f);
    }
    a.in_ptrs = ptrs.data();
    a.bn_scale = scale.data();
    a.bn_shift = shift.data();
  }
  a.out = want.data();
  ref_conv(a, c.taps);
  a.out = got.data();
  a.w = packed.data();
  (c.taps == 1 ? mk.conv1x1 : mk.conv3x3)(a);
  bool ok = true;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs(double(got[i]) - want[i]);
    if (d > *worst) *worst = d;
    if (!(d <= 1e-4 + 1e-5 * std::fabs(want[i]))) ok = false;
  }
  if (!ok)
    std::printf("  FAIL %s conv%s K=%d M=%d nq=%d relu=%d bias=%d mask=%d fused=%d\n", mk.name,
                c.taps == 1 ? "1x1" : "3x3", c.K, c.M, c.nq, c.relu, c.bias, c.mask, c.fused);
  return ok;
}

bool check_cv(const MicroKernels& mk, int taps, int M, int K, int H, int W, double* worst) {
  const int row = W + 2, plane = (H + 2) * row + 8;
  std::vector<float> in(static_cast<std::size_t>(K) * plane), w(static_cast<std::size_t>(M) * K * taps), bias(M);
  for (auto& v : in) v = uni(-1, 1);
  for (auto& v : w) v = uni(-1, 1) / std::sqrt(float(K * taps));
  for (auto& v : bias) v = uni(-0.5f, 0.5f);
  std::vector<float> packed(w.size());
  mk.pack_cv(w.data(), M, K, taps, packed.data());
  std::vector<float> got(static_cast<std::size_t>(M) * plane, 7.0f), want(got);
  CvArgs a;
  a.in = in.data() + row + 1;
  a.in_stride = plane;
  a.K = K;
  a.w = w.data();
  a.bias = (M + K) % 2 ? bias.data() : nullptr;
  a.M = M;
  a.out_stride = plane;
  a.H = H;
  a.W = W;
  a.row = row;
  a.relu = K % 2;
  a.out = want.data() + row + 1;
  ref_conv_cv(a, taps);
  a.out = got.data() + row + 1;
  a.w = packed.data();
  (taps == 1 ? mk.conv1x1_cv : mk.conv3x3_cv)(a);
  bool ok = true;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs(double(got[i]) - want[i]);
    if (d > *worst) *worst = d;
    if (!(d <= 1e-4 + 1e-5 * std::fabs(want[i]))) ok = false;
  }
  if (!ok) std::printf("  FAIL %s conv%s_cv M=%d K=%d H=%d W=%d\n", mk.name, taps == 1 ? "1x1" : "3x3", M, K, H, W);
  return ok;
}

bool check_rows(const MicroKernels& mk, int M, int K, int H, int row, bool use_mask, double* worst) {
  const int margin = row + 32, nq = H * row;
  const int in_stride = nq + 2 * margin + mk.vl;
  std::vector<float> in(static_cast<std::size_t>(K) * in_stride), w(static_cast<std::size_t>(K) * 9 * M), bias(M);
  for (auto& v : in) v = uni(-1, 1);
  for (auto& v : w) v = uni(-1, 1) / std::sqrt(float(K * 9));
  for (auto& v : bias) v = uni(-0.5f, 0.5f);
  std::vector<uint32_t> mask(nq + mk.vl);
  for (std::size_t i = 0; i < mask.size(); ++i) mask[i] = (i % row == 0) ? 0u : 0xFFFFFFFFu;
  std::vector<float> packed(w.size());
  pack_weights(mk, w.data(), M, K, 9, 0, packed.data());
  const int out_stride = nq + 2 * mk.vl;
  std::vector<float> got(static_cast<std::size_t>(M) * out_stride, 7.0f), want(got);
  ConvArgs a;
  a.in = in.data() + margin;
  a.in_stride = in_stride;
  a.K = K;
  a.w = w.data();
  a.bias = M % 2 ? bias.data() : nullptr;
  a.M = M;
  a.out_stride = out_stride;
  a.nq = nq;
  a.mask = use_mask ? mask.data() : nullptr;
  a.relu = K % 2;
  a.row = row;
  a.out = want.data();
  ref_conv(a, 9);
  a.out = got.data();
  a.w = packed.data();
  mk.conv3x3_rows(a);
  bool ok = true;
  for (int m = 0; m < M; ++m)
    for (int i = 0; i < nq; ++i) {
      const double d = std::fabs(double(got[m * out_stride + i]) - want[m * out_stride + i]);
      if (d > *worst) *worst = d;
      if (!(d <= 1e-4 + 1e-5 * std::fabs(want[m * out_stride + i]))) ok = false;
    }
  if (!ok) std::printf("  FAIL %s conv3x3_rows M=%d K=%d H=%d row=%d mask=%d\n", mk.name, M, K, H, row, use_mask);
  return ok;
}

bool check_gather(const MicroKernels& mk, int K, int nq, double* worst) {
  std::vector<std::vector<float>> chans(K, std::vector<float>(nq));
  std::vector<const float*> ptrs(K);
  std::vector<float> scale(K), shift(K);
  for (int k = 0; k < K; ++k) {
    for (auto& v : chans[k]) v = uni(-2, 2);
    ptrs[k] = chans[k].data();
    scale[k] = uni(0.5f, 1.5f);
    shift[k] = uni(-0.3f, 0.3f);
  }
  std::vector<float> got(static_cast<std::size_t>(K) * nq), want(got.size());
  GatherArgs g;
  g.in = ptrs.data();
  g.scale = scale.data();
  g.shift = shift.data();
  g.K = K;
  g.out_stride = nq;
  g.nq = nq;
  g.out = want.data();
  ref_bnrelu_gather(g);
  g.out = got.data();
  mk.bnrelu_gather(g);
  bool ok = true;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs(double(got[i]) - want[i]);
    if (d > *worst) *worst = d;
    if (d > 1e-5) ok = false;
  }
  if (!ok) std::printf("  FAIL %s gather K=%d nq=%d\n", mk.name, K, nq);
  return ok;
}

}  // namespace

int main() {
  const MicroKernels* avail[9];
  int n = available_kernels(avail, 8);
  if (const MicroKernels* half = half_kernels(*avail[n - 1])) avail[n++] = half;  // e.g. avx512y
  int failures = 0;
#if defined(__aarch64__)
  std::printf("cpu: %s; NEON tiles %s\n", cpu_features_text(), neon_tiles().core_class);
#endif
  for (int i = 0; i < n; ++i) {
    const MicroKernels& mk = *avail[i];
    double worst = 0;
    int cases = 0, bad = 0;
    for (int kind : {0, 1, 2})  // 1x1, 3x3, 1x1 with fused gather
      for (int M : {1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 16, 20, 24, 32, 40})
        for (int K : {1, 2, 5, 17, 61})  // 61: a fused 1x1 in more than one pass (NEON)
          for (int nv : {1, 2, 3, 4, 5, 7, 9, 11, 14, 17}) {
            if (K == 61 && kind != 2) continue;
            Case c{K, M, nv * 16, 9 + (nv % 5), kind == 1 ? 9 : 1, (M + K) % 2, (M % 3) != 0, (K % 2) == 1,
                   kind == 2};
            ++cases;
            if (!check_conv(mk, c, &worst)) ++bad;
          }
    for (int taps : {1, 9})
      for (int mv : {1, 2, 3, 4, 5, 7})
        for (int K : {1, 3, 17})
          for (auto hw : {std::pair<int, int>{1, 1}, {7, 7}, {3, 14}, {14, 14}, {5, 9}, {2, 23}}) {
            ++cases;
            if (!check_cv(mk, taps, mv * mk.vl, K, hw.first, hw.second, &worst)) ++bad;
          }
    for (int M : {1, 2, 3, 4})
      for (int K : {1, 3, 8})
        for (int H : {1, 2, 5, 13, 17})
          for (int row : {3, 9, 16, 30, 58}) {
            ++cases;
            if (!check_rows(mk, M, K, H, row, (H + row) % 2 == 1, &worst)) ++bad;
          }
    for (int K : {1, 3, 8})
      for (int nv : {1, 3, 8}) {
        ++cases;
        if (!check_gather(mk, K, nv * 16, &worst)) ++bad;
      }
    std::printf("%s (vl %d, mr %d): %d cases, %d failed, max abs diff %.3g\n", mk.name, mk.vl, mk.mr_max, cases, bad,
                worst);
    failures += bad;
  }
  std::printf(failures ? "FAILED\n" : "OK\n");
  return failures ? 1 : 0;
}
