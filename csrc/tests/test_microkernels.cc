// Micro-kernel unit test: every ISA this CPU runs against the scalar references, on random data
// with odd sizes (all M, K and position counts that exercise full and remainder tiles); where the
// CPU has FP16 arithmetic, the fp16 kernels against the same references and the DenseBlock op in
// precision fp16 against precision fp32 on the CondenseNet-74 block shapes (elsewhere: that the op
// refuses precision fp16). Prints one line per ISA; exit code 0 when all pass.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "ops/dense_block.h"
#include "ukernels/bn_fold.h"
#include "ukernels/config.h"

using namespace cdops;

namespace {

std::mt19937 rng(1234);
float uni(float a, float b) { return std::uniform_real_distribution<float>(a, b)(rng); }

struct Case {
  int K, M, nq, row, taps, relu, bias, mask, fused;  // fused: 1x1 with in_ptrs + BN/ReLU
  int bn = 0;  // fused, the BN scales: 0 in [0.5, 1.5]; 1 mixed signs, zeros and NaN inputs; 2 tiny and huge
};

// Scale and shift of fused input k for Case::bn (see there).
void bn_params(int bn, int k, float* s, float* b) {
  const float u = uni(0.5f, 1.5f), v = uni(-0.3f, 0.3f);
  if (bn == 0) {
    *s = u, *b = v;
  } else if (bn == 1) {
    const float sc[4] = {u, -u, 0.0f, u};
    *s = sc[k % 4], *b = v;
  } else {
    // |shift / scale| beyond the float range (never or always active), then thresholds near 0
    const float sc[4] = {1e-37f, -1e-37f, 1e20f, -1e20f};
    *s = sc[k % 4], *b = k % 4 < 2 ? ((k / 4) % 2 ? 50.0f : -50.0f) : v;
  }
}

// ---- element types: one checking body serves the fp32 and the fp16 kernel tables ---------------

// Values rounded to fp16 (what the fp16 kernels see), as floats.
std::vector<float> to_half_floats(const F16Kernels& hk, std::vector<float> v) {
  std::vector<half_t> h(v.size());
  hk.f32_to_f16(v.data(), h.data(), v.size());
  hk.f16_to_f32(h.data(), v.data(), v.size());
  return v;
}
std::vector<half_t> to_halves(const F16Kernels& hk, const std::vector<float>& v) {
  std::vector<half_t> h(v.size());
  hk.f32_to_f16(v.data(), h.data(), v.size());
  return h;
}
std::vector<float> abs_of(std::vector<float> v) {
  for (auto& x : v) x = std::fabs(x);
  return v;
}

// fp16 sums against the double-accumulated reference of the same (fp16-rounded) values. The
// error allowed for an output is kF16Tol half-precision units (2^-11) of its sum of |terms|
// (|bias| + sum |w * x|): fp16 accumulation of n terms errs by up to about sqrt(n) such units on
// random data (n up to 360 here), a wrong weight or tap by the whole term.
constexpr double kF16Unit = 1.0 / 2048;
constexpr double kF16Tol = 24;

// What a check needs to know of a kernel table: its element type and argument structs, the values
// its kernels see (fp16: rounded), and how far one of its outputs may be from the reference.
template <class Kernels>
struct Elem;

template <>
struct Elem<MicroKernels> {
  using T = float;
  using Conv = ConvArgs;
  using Cv = CvArgs;
  using Mask = uint32_t;
  static constexpr int kWeightSlack = 0;
  static constexpr int kPlaneSlack = 8;  // check_cv: room after a channel plane's last row
  static constexpr bool kTermSums = false;  // the tolerance needs no sum of |terms| (but see check_conv)
  static std::vector<float> seen(const MicroKernels&, std::vector<float> v) { return v; }
  static std::vector<float> elems(const MicroKernels&, const std::vector<float>& v) { return v; }
  static std::vector<float> floats(const MicroKernels&, const std::vector<float>& v) { return v; }
  // the absolute difference; allowed: 1e-4 + 1e-5 |want| + 1e-6 of the output's bound (check_conv's
  // fused 1x1: the folded terms' sum of magnitudes; else 0)
  static double error(float got, float want, double) { return std::fabs(double(got) - want); }
  static bool allowed(double err, float want, double bound) {
    return err <= 1e-4 + 1e-5 * std::fabs(want) + 1e-6 * bound;
  }
};

template <>
struct Elem<F16Kernels> {
  using T = half_t;
  using Conv = F16ConvArgs;
  using Cv = F16CvArgs;
  using Mask = uint16_t;
  static constexpr int kWeightSlack = kF16WeightSlack;
  static constexpr int kPlaneSlack = 16;
  static constexpr bool kTermSums = true;
  static std::vector<float> seen(const F16Kernels& hk, std::vector<float> v) { return to_half_floats(hk, std::move(v)); }
  static std::vector<half_t> elems(const F16Kernels& hk, const std::vector<float>& v) { return to_halves(hk, v); }
  static std::vector<float> floats(const F16Kernels& hk, const std::vector<half_t>& h) {
    std::vector<float> v(h.size());
    hk.f16_to_f32(h.data(), v.data(), h.size());
    return v;
  }
  // in half-precision units of the output's sum of |terms| (its bound); allowed: kF16Tol
  static double error(float got, float want, double bound) {
    return std::fabs(double(got) - want) / (kF16Unit * std::max(1e-3f, static_cast<float>(bound)));
  }
  static bool allowed(double err, float, double) { return err <= kF16Tol; }
};

// got against want, output by output: the largest error into *worst (unless worst is null); false
// if an error is more than E allows. bound: each output's bound for E (empty: 0).
template <class E>
bool within(const std::vector<float>& got, const std::vector<float>& want, const std::vector<double>& bound,
            double* worst) {
  bool ok = true;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double b = bound.empty() ? 0.0 : bound[i], err = E::error(got[i], want[i], b);
    if (worst && err > *worst) *worst = err;
    if (!E::allowed(err, want[i], b)) ok = false;
  }
  return ok;
}

// Random operands as every conv check draws them: inputs in [-1, 1], weights [M][K][taps] scaled by
// 1/sqrt(K * taps), biases in [-0.5, 0.5].
struct Operands {
  std::vector<float> in, w, bias;
};
Operands random_operands(std::size_t n_in, int M, int K, int taps) {
  Operands o{std::vector<float>(n_in), std::vector<float>(static_cast<std::size_t>(K) * taps * M), std::vector<float>(M)};
  for (auto& v : o.in) v = uni(-1, 1);
  for (auto& v : o.w) v = uni(-1, 1) / std::sqrt(float(K * taps));
  for (auto& v : o.bias) v = uni(-0.5f, 0.5f);
  return o;
}

// The kernel's arguments (ConvArgs or CvArgs of its element type) with the reference's sizes,
// strides and ReLU; the caller sets the pointers.
template <class A, class R>
A same_shape(const R& r) {
  A a;
  a.in_stride = r.in_stride;
  a.K = r.K;
  a.M = r.M;
  a.out_stride = r.out_stride;
  a.row = r.row;
  a.relu = r.relu;
  if constexpr (std::is_same_v<R, ConvArgs>) {
    a.nq = r.nq;
  } else {
    a.H = r.H;
    a.W = r.W;
  }
  return a;
}

// Each output's sum of |terms| (|bias| + sum |w * x|): ref (the reference of args a over in, w and
// bias) run on their absolute values without the ReLU. A fused 1x1 keeps its inputs (in_ptrs): BN +
// ReLU makes them >= 0 already. n_out outputs, a.out at out_offset of them.
template <class A, class Ref>
std::vector<double> term_sums(A a, const std::vector<float>& in, const std::vector<float>& w,
                              const std::vector<float>& bias, std::size_t n_out, std::ptrdiff_t out_offset, Ref ref) {
  const std::vector<float> abs_in = abs_of(in), abs_w = abs_of(w), abs_bias = abs_of(bias);
  std::vector<float> sums(n_out, 7.0f);
  a.in = abs_in.data() + (a.in - in.data());
  a.w = abs_w.data();
  a.bias = a.bias ? abs_bias.data() : nullptr;
  a.relu = 0;
  a.out = sums.data() + out_offset;
  ref(a);
  return std::vector<double>(sums.begin(), sums.end());
}

// Position-vector 1x1 / 3x3 of table mk against the reference. The fused 1x1 (c.fused): fp32 folds
// BN + ReLU into weights and bias, as the plan does, and is checked against its contract (ref_conv
// of the folded arguments) and against the unfolded meaning (ref_conv1x1_bnrelu); fp16 keeps them
// unfolded (fp16 sums of folded biases would lose accuracy).
template <class Kernels>
bool check_conv(const Kernels& mk, const Case& c, double* worst) {
  using E = Elem<Kernels>;
  using T = typename E::T;
  constexpr bool folds = std::is_same_v<Kernels, MicroKernels>;
  const int margin = c.row + 32;
  const int in_stride = c.nq + 2 * margin, out_stride = c.nq + 16;
  Operands o = random_operands(static_cast<std::size_t>(c.K) * in_stride, c.M, c.K, c.taps);
  std::vector<float> scale(c.K), shift(c.K);
  if constexpr (!folds) {  // fp16: BN scales and shifts for every case (fp32: below, fused only)
    for (auto& v : scale) v = uni(0.5f, 1.5f);
    for (auto& v : shift) v = uni(-0.3f, 0.3f);
  }
  std::vector<float> in = E::seen(mk, std::move(o.in)), w = E::seen(mk, std::move(o.w)),
                     bias = E::seen(mk, std::move(o.bias));
  scale = E::seen(mk, scale);
  shift = E::seen(mk, shift);
  std::vector<uint32_t> mask(c.nq);
  std::vector<typename E::Mask> k_mask(c.nq);
  for (int i = 0; i < c.nq; ++i) {
    mask[i] = (i % 7 == 3) ? 0u : 0xFFFFFFFFu;
    k_mask[i] = static_cast<typename E::Mask>(mask[i]);
  }
  const std::size_t n_out = static_cast<std::size_t>(c.M) * out_stride + 16;
  std::vector<float> want(n_out, 7.0f), unfolded;
  ConvArgs a;
  a.in = in.data() + margin;
  a.in_stride = in_stride;
  a.K = c.K;
  a.w = w.data();
  a.bias = c.bias ? bias.data() : nullptr;
  a.M = c.M;
  a.out_stride = out_stride;
  a.nq = c.nq;
  a.mask = c.mask ? mask.data() : nullptr;
  a.relu = c.relu;
  a.row = c.row;
  std::vector<const float*> ptrs(c.K), fptrs;
  if (c.fused) {
    for (int k = 0; k < c.K; ++k)
      ptrs[k] = in.data() + margin + static_cast<std::ptrdiff_t>((k * 7) % c.K) * in_stride;  // any order
    a.in_ptrs = ptrs.data();
  }
  std::vector<double> bound;
  BnFold f;
  if constexpr (folds) {
    if (c.fused) {
      for (int k = 0; k < c.K; ++k) bn_params(c.bn, k, &scale[k], &shift[k]);
      // NaN inputs: a NaN contributes 0 through max(NaN * s + b, 0), and ~0 folded. Not where s == 0
      // (folded: the constant relu(b) whatever the input is)
      if (c.bn == 1)
        for (int k = 0; k < c.K; ++k)
          for (int i = k % 5; i < c.nq && scale[k] != 0.0f; i += 3 + k % 4) const_cast<float*>(ptrs[k])[i] = NAN;
      unfolded.assign(n_out, 7.0f);
      a.out = unfolded.data();
      ref_conv1x1_bnrelu(a, scale.data(), shift.data());
      if (!fold_bn_relu(w.data(), a.bias, c.M, c.K, scale.data(), shift.data(), f)) {
        std::printf("  FAIL fold_bn_relu refused finite parameters\n");
        return false;
      }
      fptrs.resize(f.order.size() + 1);  // never empty: a non-null in_ptrs says fused, even with no inputs
      for (std::size_t k = 0; k < f.order.size(); ++k) fptrs[k] = ptrs[f.order[k]];
      a.in_ptrs = fptrs.data();
      a.K = static_cast<int>(f.order.size());
      a.w = f.w.data();
      a.bias = f.bias.data();
      a.bn_thresh = f.thresh.data();
      a.n_max = f.n_max;
      // the float sums of the folded terms round relative to their magnitudes (huge scales, and
      // the w * shift terms cancel in the sum): 1e-6 of |bias| + sum |w| (|s * clamp(x)| + |b|) more
      bound.assign(n_out, 0.0);
      for (int m = 0; m < c.M; ++m)
        for (int i = 0; i < c.nq; ++i) {
          double b = c.bias ? std::fabs(bias[m]) : 0.0;
          for (int k = 0; k < c.K; ++k) {
            const float x = ptrs[k][i], t = -shift[k] / scale[k];
            const float cx = scale[k] > 0 ? (x > t ? x : t) : (x < t ? x : t);
            const double s_cx = scale[k] == 0.0f ? 0.0 : std::fabs(double(scale[k]) * cx);
            b += std::fabs(w[static_cast<std::size_t>(m) * c.K + k]) * (s_cx + std::fabs(shift[k]));
          }
          bound[static_cast<std::size_t>(m) * out_stride + i] = b;
        }
    }
    a.out = want.data();
    ref_conv(a, c.taps);
  } else {
    auto ref = [&](const ConvArgs& r) {
      c.fused ? ref_conv1x1_bnrelu(r, scale.data(), shift.data()) : ref_conv(r, c.taps);
    };
    a.out = want.data();
    ref(a);
    bound = term_sums(a, in, w, bias, n_out, 0, ref);
  }

  // the kernel on the same values in its element type (its inputs copied after the NaNs went in)
  std::vector<T> packed(w.size() + E::kWeightSlack);
  if (c.taps == 1)
    mk.pack_conv1x1(a.w, c.M, a.K, c.fused, packed.data());
  else
    mk.pack_conv3x3(a.w, c.M, a.K, packed.data());
  const std::vector<float>& a_bias = f.bias.empty() ? bias : f.bias;  // fp32 fused: the folded bias
  const std::vector<T> k_in = E::elems(mk, in), k_bias = E::elems(mk, a_bias), k_scale = E::elems(mk, scale),
                       k_shift = E::elems(mk, shift);
  std::vector<T> k_out = E::elems(mk, std::vector<float>(n_out, 7.0f));
  std::vector<const T*> k_ptrs(a.K + 1);
  auto h = same_shape<typename E::Conv>(a);
  h.in = k_in.data() + margin;
  h.w = packed.data();
  h.bias = a.bias ? k_bias.data() : nullptr;
  h.out = k_out.data();
  h.mask = a.mask ? k_mask.data() : nullptr;
  if (c.fused) {
    for (int k = 0; k < a.K; ++k) k_ptrs[k] = k_in.data() + (a.in_ptrs[k] - in.data());
    h.in_ptrs = k_ptrs.data();
    if constexpr (folds) {
      h.bn_thresh = a.bn_thresh;
      h.n_max = a.n_max;
    } else {
      h.bn_scale = k_scale.data();
      h.bn_shift = k_shift.data();
    }
  }
  (c.taps == 1 ? mk.conv1x1 : mk.conv3x3)(h);
  const std::vector<float> got = E::floats(mk, k_out);
  bool ok = within<E>(got, want, bound, c.bn == 2 ? nullptr : worst);  // (bn 2: sums near 1e20)
  if (!unfolded.empty()) ok = within<E>(got, unfolded, bound, nullptr) && ok;  // the same bound
  if (!ok)
    std::printf("  FAIL %s conv%s K=%d M=%d nq=%d relu=%d bias=%d mask=%d fused=%d bn=%d\n", mk.name,
                c.taps == 1 ? "1x1" : "3x3", c.K, c.M, c.nq, c.relu, c.bias, c.mask, c.fused, c.bn);
  return ok;
}

// Channel-vector 1x1 / 3x3 of table mk against the reference.
template <class Kernels>
bool check_cv(const Kernels& mk, int taps, int M, int K, int H, int W, double* worst) {
  using E = Elem<Kernels>;
  using T = typename E::T;
  const int row = W + 2, plane = (H + 2) * row + E::kPlaneSlack;
  Operands o = random_operands(static_cast<std::size_t>(K) * plane, M, K, taps);
  const std::vector<float> in = E::seen(mk, std::move(o.in)), w = E::seen(mk, std::move(o.w)),
                           bias = E::seen(mk, std::move(o.bias));
  std::vector<float> want(static_cast<std::size_t>(M) * plane, 7.0f);
  CvArgs a;
  a.in = in.data() + row + 1;
  a.in_stride = plane;
  a.K = K;
  a.w = w.data();
  a.bias = (M + K) % 2 ? bias.data() : nullptr;
  a.M = M;
  a.out = want.data() + row + 1;
  a.out_stride = plane;
  a.H = H;
  a.W = W;
  a.row = row;
  a.relu = K % 2;
  ref_conv_cv(a, taps);
  std::vector<double> bound;
  if constexpr (E::kTermSums)
    bound = term_sums(a, in, w, bias, want.size(), row + 1, [&](const CvArgs& r) { ref_conv_cv(r, taps); });

  std::vector<T> packed(w.size() + E::kWeightSlack);
  mk.pack_cv(w.data(), M, K, taps, packed.data());
  const std::vector<T> k_in = E::elems(mk, in), k_bias = E::elems(mk, bias);
  std::vector<T> k_out = E::elems(mk, std::vector<float>(want.size(), 7.0f));
  auto h = same_shape<typename E::Cv>(a);
  h.in = k_in.data() + row + 1;
  h.w = packed.data();
  h.bias = a.bias ? k_bias.data() : nullptr;
  h.out = k_out.data() + row + 1;
  (taps == 1 ? mk.conv1x1_cv : mk.conv3x3_cv)(h);
  const bool ok = within<E>(E::floats(mk, k_out), want, bound, worst);
  if (!ok) std::printf("  FAIL %s conv%s_cv M=%d K=%d H=%d W=%d\n", mk.name, taps == 1 ? "1x1" : "3x3", M, K, H, W);
  return ok;
}

bool check_rows(const MicroKernels& mk, int M, int K, int H, int row, bool use_mask, double* worst) {
  const int margin = row + 32, nq = H * row;
  const int in_stride = nq + 2 * margin + mk.vl;
  const Operands o = random_operands(static_cast<std::size_t>(K) * in_stride, M, K, 9);
  const std::vector<float>&in = o.in, &w = o.w, &bias = o.bias;
  std::vector<uint32_t> mask(nq + mk.vl);
  // the dense block's layout: a pad column either side of each image row
  for (std::size_t i = 0; i < mask.size(); ++i) mask[i] = (i % row == 0 || i % row == row - 1u) ? 0u : 0xFFFFFFFFu;
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
      if (!use_mask && (i % row == 0 || i % row == row - 1)) continue;  // pad columns: any value
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

// The folded gather (GatherArgs::thresh): BN scales and shifts of Case::bn folded as the plan does,
// the clamp against the reference bit for bit, and s * out + b against the unfolded max(s*x + b, 0)
// (both signs, zero, tiny and huge scales; NaN inputs for bn 1, which give ~0 folded).
bool check_clamp_gather(const MicroKernels& mk, int K, int nq, int bn) {
  std::vector<std::vector<float>> chans(K, std::vector<float>(nq));
  std::vector<float> scale(K), shift(K), w(K, 1.0f);
  for (int k = 0; k < K; ++k) {
    for (auto& v : chans[k]) v = uni(-2, 2);
    bn_params(bn, k, &scale[k], &shift[k]);
    if (bn == 1)
      for (int i = k % 3; i < nq; i += 2 + k % 5) chans[k][i] = NAN;
  }
  BnFold f;
  if (!fold_bn_relu(w.data(), nullptr, 1, K, scale.data(), shift.data(), f)) {
    std::printf("  FAIL fold_bn_relu refused finite parameters\n");
    return false;
  }
  const int kf = static_cast<int>(f.order.size());
  std::vector<const float*> ptrs(kf + 1);
  for (int k = 0; k < kf; ++k) ptrs[k] = chans[f.order[k]].data();
  std::vector<float> got(static_cast<std::size_t>(kf) * nq + 1, 7.0f), want(got);
  GatherArgs g;
  g.in = ptrs.data();
  g.thresh = f.thresh.data();
  g.n_max = f.n_max;
  g.K = kf;
  g.out_stride = nq;
  g.nq = nq;
  g.out = want.data();
  ref_bnrelu_gather(g);
  g.out = got.data();
  mk.bnrelu_gather(g);
  bool ok = std::memcmp(got.data(), want.data(), sizeof(float) * got.size()) == 0;
  for (int k = 0; k < kf && ok; ++k) {
    const int src = f.order[k];
    const float s = scale[src], b = shift[src];
    for (int i = 0; i < nq; ++i) {
      const float x = chans[src][i], v = x * s + b, relu = v > 0.0f ? v : 0.0f;
      const double folded = double(s) * got[static_cast<std::size_t>(k) * nq + i] + b;
      if (!(std::fabs(folded - relu) <= 1e-6 * (std::fabs(double(s) * got[k * nq + i]) + std::fabs(b)) + 1e-30))
        ok = false;
    }
  }
  if (!ok) std::printf("  FAIL %s clamp gather K=%d nq=%d bn=%d\n", mk.name, K, nq, bn);
  return ok;
}

// ---- fp16 ------------------------------------------------------------------------------------

bool check_f16_gather(const F16Kernels& hk, int K, int nq, double* worst) {
  std::vector<float> in(static_cast<std::size_t>(K) * nq), scale(K), shift(K);
  for (auto& v : in) v = uni(-2, 2);
  for (int k = 0; k < K; ++k) {
    scale[k] = uni(0.5f, 1.5f);
    shift[k] = uni(-0.3f, 0.3f);
  }
  in = to_half_floats(hk, in);
  scale = to_half_floats(hk, scale);
  shift = to_half_floats(hk, shift);
  std::vector<half_t> h_in = to_halves(hk, in), h_scale = to_halves(hk, scale), h_shift = to_halves(hk, shift);
  std::vector<const half_t*> h_ptrs(K);
  for (int k = 0; k < K; ++k) h_ptrs[k] = h_in.data() + static_cast<std::ptrdiff_t>((k * 5) % K) * nq;
  std::vector<half_t> h_out(in.size());
  F16GatherArgs g;
  g.in = h_ptrs.data();
  g.scale = h_scale.data();
  g.shift = h_shift.data();
  g.K = K;
  g.out = h_out.data();
  g.out_stride = nq;
  g.nq = nq;
  hk.bnrelu_gather(g);
  std::vector<float> got(in.size());
  hk.f16_to_f32(h_out.data(), got.data(), got.size());
  bool ok = true;
  for (int k = 0; k < K; ++k)
    for (int i = 0; i < nq; ++i) {
      const float x = in[static_cast<std::size_t>((k * 5) % K) * nq + i], want = std::max(0.0f, x * scale[k] + shift[k]);
      // one fp16 rounding of the fused multiply-add
      const double units = std::fabs(double(got[k * nq + i]) - want) /
                           (kF16Unit * std::max(1e-3f, std::fabs(x * scale[k]) + std::fabs(shift[k])));
      if (units > *worst) *worst = units;
      if (!(units <= 1.0)) ok = false;
    }
  if (!ok) std::printf("  FAIL %s gather K=%d nq=%d\n", hk.name, K, nq);
  return ok;
}

bool check_f16_convert(const F16Kernels& hk, int n) {
  std::vector<float> v(n), back(n);
  for (auto& x : v) x = uni(-70000.0f, 70000.0f) * (uni(0, 1) < 0.5f ? 1e-4f : 1.0f);
  std::vector<half_t> h(n + 1, 0x5555);
  hk.f32_to_f16(v.data(), h.data(), n);
  hk.f16_to_f32(h.data(), back.data(), n);
  bool ok = h[n] == 0x5555;  // nothing written past n
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(v[i]);
    if (a > 65520.0f) {  // rounds to +-inf
      ok = ok && std::isinf(back[i]) && (back[i] > 0) == (v[i] > 0);
    } else {
      // round to nearest: within half a unit of the last place (normal range) or of 2^-24
      const double ulp = a >= 6.103515625e-05f ? std::ldexp(1.0, std::ilogb(a) - 10) : std::ldexp(1.0, -24);
      ok = ok && std::fabs(double(back[i]) - v[i]) <= 0.5 * ulp;
    }
  }
  if (!ok) std::printf("  FAIL %s convert n=%d\n", hk.name, n);
  return ok;
}

// Random DenseBlock parameters as a converted CondenseNet has them (as condense_deploy.native.op_models
// makes them): kept_l = C_l * G / condense, each 1x1 group picks kept_l / G distinct channels.
struct BlockCase {
  const char* name;
  int C0, growth, L, groups, condense, H, W;
};

struct BlockParams {
  DenseBlockAttrs attrs;
  std::vector<int64_t> index;
  std::vector<float> scale, shift, w1, b1, w3;
};

BlockParams block_params(const BlockCase& c) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  BlockParams p;
  const int mid = 4 * c.growth;
  p.attrs.growth = c.growth;
  p.attrs.mid = mid;
  p.attrs.groups_1x1 = c.groups;
  p.attrs.groups_3x3 = c.groups;
  for (int l = 0; l < c.L; ++l) {
    const int cl = c.C0 + l * c.growth, k = cl * c.groups / c.condense;
    p.attrs.kept.push_back(k);
    for (int j = 0; j < c.groups; ++j) {
      std::vector<int64_t> all(cl);
      for (int i = 0; i < cl; ++i) all[i] = i;
      std::shuffle(all.begin(), all.end(), rng);
      p.index.insert(p.index.end(), all.begin(), all.begin() + k / c.groups);
    }
    for (int i = 0; i < k; ++i) {
      p.scale.push_back(uni(0.5f, 1.5f));
      p.shift.push_back(0.1f * normal(rng));
    }
    const int fan1 = k / c.groups, fan3 = mid / c.groups * 9;
    for (int i = 0; i < mid * fan1; ++i) p.w1.push_back(std::sqrt(2.0f / fan1) * normal(rng));
    for (int i = 0; i < mid; ++i) p.b1.push_back(0.1f * normal(rng));
    for (int i = 0; i < c.growth * (mid / c.groups) * 9; ++i) p.w3.push_back(std::sqrt(2.0f / fan3) * normal(rng));
  }
  return p;
}

// Runs the block on X (N images, N = X.size() / (C0*H*W)), serially or on two threads.
std::vector<float> run_block(const BlockParams& bp, Precision precision, const std::vector<float>& X, const BlockCase& c,
                             bool two_threads = false) {
  DenseBlockAttrs attrs = bp.attrs;
  attrs.precision = precision;
  DenseBlock op(attrs);
  DenseBlockParams p;
  p.index = bp.index.data();
  p.n_index = bp.index.size();
  p.scale = bp.scale.data();
  p.n_scale = bp.scale.size();
  p.shift = bp.shift.data();
  p.n_shift = bp.shift.size();
  p.w1 = bp.w1.data();
  p.n_w1 = bp.w1.size();
  p.b1 = bp.b1.data();
  p.n_b1 = bp.b1.size();
  p.w3 = bp.w3.data();
  p.n_w3 = bp.w3.size();
  DenseBlockPacked packed;
  op.pack(p, select_kernels(), packed);
  const int64_t Ctot = c.C0 + c.L * c.growth, N = static_cast<int64_t>(X.size()) / (c.C0 * c.H * c.W);
  std::vector<float> Y(static_cast<std::size_t>(N * Ctot) * c.H * c.W);
  const ParallelFor serial = [](std::size_t n, const std::function<void(std::size_t)>& fn) {
    for (std::size_t i = 0; i < n; ++i) fn(i);
  };
  const ParallelFor threads = [](std::size_t n, const std::function<void(std::size_t)>& fn) {
    std::atomic<std::size_t> next{0};
    auto work = [&] {
      for (std::size_t i; (i = next++) < n;) fn(i);
    };
    std::thread other(work);
    work();
    other.join();
  };
  op.run(packed, X.data(), N, c.C0, c.H, c.W, Y.data(), two_threads ? threads : serial);
  return Y;
}

// DenseBlock in precision fp16 against precision fp32 (the fp32 kernels, checked above against
// the references) on one block: the largest difference of a new channel, absolute and relative
// to the largest |value| of the new channels; the input channels must be copied exactly.
constexpr double kBlockRelTol = 2e-2;

bool check_f16_block(const BlockCase& c) {
  const BlockParams bp = block_params(c);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> X(static_cast<std::size_t>(c.C0) * c.H * c.W);
  for (auto& v : X) v = normal(rng);
  const std::vector<float> y32 = run_block(bp, Precision::fp32, X, c), y16 = run_block(bp, Precision::fp16, X, c);
  const std::size_t n_in = X.size();
  bool ok = std::equal(X.begin(), X.end(), y16.begin());
  double diff = 0, top = 0;
  for (std::size_t i = n_in; i < y32.size(); ++i) {
    diff = std::max(diff, std::fabs(double(y16[i]) - y32[i]));
    top = std::max(top, std::fabs(double(y32[i])));
  }
  const double rel = diff / std::max(top, 1e-30);
  ok = ok && rel <= kBlockRelTol;
  if (c.H * c.W <= 400) {
    // a batch of two images on two threads gives each image's single-image result bit for bit
    std::vector<float> X2(X.size()), batch(X);
    for (auto& v : X2) v = normal(rng);
    batch.insert(batch.end(), X2.begin(), X2.end());
    std::vector<float> want = y16, second = run_block(bp, Precision::fp16, X2, c);
    want.insert(want.end(), second.begin(), second.end());
    const bool same = run_block(bp, Precision::fp16, batch, c, true) == want;
    if (!same) std::printf("  block %s: FAIL: a batch of 2 on 2 threads differs from single images\n", c.name);
    ok = ok && same;
  }
  std::printf("  block %s: C0=%d growth=%d L=%d G=%d %dx%d: fp16 vs fp32 max abs diff %.3g (max |y| %.3g, "
              "relative %.2g)%s\n",
              c.name, c.C0, c.growth, c.L, c.groups, c.H, c.W, diff, top, rel, ok ? "" : " FAIL");
  return ok;
}

int test_f16() {
  const F16Kernels* hk = f16_kernels();
  if (!hk) {
    // the op must refuse precision fp16 at creation, with the reason
    DenseBlockAttrs a;
    a.growth = 8;
    a.mid = 32;
    a.groups_1x1 = a.groups_3x3 = 4;
    a.kept = {16};
    a.precision = Precision::fp16;
    try {
      DenseBlock op(a);
    } catch (const InvalidArgument& e) {
      std::printf("fp16: refused: %s\n", e.what());
      return 0;
    }
    std::printf("fp16: FAIL: precision fp16 was not refused on a CPU without FP16 arithmetic\n");
    return 1;
  }
  double worst = 0, worst_gather = 0;
  int cases = 0, bad = 0;
  for (int kind : {0, 1, 2})  // 1x1, 3x3, 1x1 with fused gather
    for (int M : {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 20, 24, 32, 40})
      for (int K : {1, 2, 5, 17, 40})
        for (int nv : {1, 2, 3, 4, 5, 7, 9, 11, 14, 17}) {
          Case c{K, M, nv * 16, 9 + (nv % 5), kind == 1 ? 9 : 1, (M + K) % 2, (M % 3) != 0, (K % 2) == 1, kind == 2};
          ++cases;
          if (!check_conv(*hk, c, &worst)) ++bad;
        }
  for (int taps : {1, 9})
    for (int mv : {1, 2, 3, 4, 5, 7, 8})
      for (int K : {1, 3, 17})
        for (auto hw : {std::pair<int, int>{1, 1}, {7, 7}, {3, 14}, {14, 14}, {5, 9}, {2, 23}, {4, 16}, {3, 17}}) {
          ++cases;
          if (!check_cv(*hk, taps, mv * hk->vl, K, hw.first, hw.second, &worst)) ++bad;
        }
  for (int K : {1, 3, 8})
    for (int nv : {1, 3, 8}) {
      ++cases;
      if (!check_f16_gather(*hk, K, nv * 8, &worst_gather)) ++bad;
    }
  for (int n : {0, 1, 7, 8, 9, 31, 1000}) {
    ++cases;
    if (!check_f16_convert(*hk, n)) ++bad;
  }
  std::printf("%s (vl %d, fp16): %d cases, %d failed, worst error %.3g fp16 units of the sum of |terms| "
              "(allowed %g), gather %.3g units\n",
              hk->name, hk->vl, cases, bad, worst, kF16Tol, worst_gather);
  // The CondenseNet-74 blocks (C=G=8 and C=G=4, 224x224 input) and odd sizes.
  const BlockCase blocks[] = {
      {"1 C=G=8", 16, 8, 4, 8, 8, 112, 112},  {"2 C=G=8", 48, 16, 6, 8, 8, 56, 56},
      {"3 C=G=8", 144, 32, 8, 8, 8, 28, 28},  {"4 C=G=8", 400, 64, 10, 8, 8, 14, 14},
      {"5 C=G=8", 1040, 128, 8, 8, 8, 7, 7},  {"1 C=G=4", 16, 8, 4, 4, 4, 112, 112},
      {"2 C=G=4", 48, 16, 6, 4, 4, 56, 56},   {"3 C=G=4", 144, 32, 8, 4, 4, 28, 28},
      {"4 C=G=4", 400, 64, 10, 4, 4, 14, 14}, {"5 C=G=4", 1040, 128, 8, 4, 4, 7, 7},
      {"odd", 12, 6, 3, 2, 2, 5, 9},          {"odd", 16, 8, 2, 4, 8, 1, 1},
      {"odd", 12, 4, 3, 2, 4, 13, 11},        {"odd", 24, 24, 2, 4, 4, 3, 30},
      {"odd", 20, 20, 2, 4, 4, 6, 17},
  };
  std::printf("DenseBlock fp16 vs fp32 (allowed: relative %g):\n", kBlockRelTol);
  for (const BlockCase& c : blocks)
    if (!check_f16_block(c)) ++bad;
  return bad;
}

}  // namespace

// --no-fp16: the fp32 tables only (the fp16 checks do not depend on the NEON tile class, so a second
// run on the same core with other tiles can leave them out).
int main(int argc, char** argv) {
  const bool fp16 = !(argc > 1 && std::string(argv[1]) == "--no-fp16");
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
        for (int K : {1, 2, 5, 17, 61, 300})  // 300: a fused 1x1 in more than one pass (NEON)
          for (int nv : {1, 2, 3, 4, 5, 7, 9, 11, 14, 17})
            for (int bn : {0, 1, 2}) {
              // the other BN scales (and K 300) on fewer sizes: the qemu runs stay short
              if (kind != 2 ? (bn || K >= 61) : (bn || K == 300) && (K == 2 || K == 61 || nv % 3 != 2 || (K == 300 && nv > 5))) continue;
              Case c{K, M, nv * 16, 9 + (nv % 5), kind == 1 ? 9 : 1, (M + K) % 2, (M % 3) != 0, (K % 2) == 1,
                     kind == 2, bn};
              ++cases;
              if (!check_conv(mk, c, &worst)) ++bad;
            }
    for (int M : {1, 4, 8, 13, 32, 40})  // a folded 1x1 after the gather whose inputs were all dropped
      for (int nv : {1, 3, 5}) {
        Case c{0, M, nv * 16, 9, 1, 1, M % 2, 1, 0, 0};
        ++cases;
        if (!check_conv(mk, c, &worst)) ++bad;
      }
    for (int taps : {1, 9})
      for (int mv : {1, 2, 3, 4, 5, 7})
        for (int K : {0, 1, 3, 17})  // 0: a folded 1x1 whose inputs were all dropped
          for (auto hw : {std::pair<int, int>{1, 1}, {7, 7}, {3, 14}, {14, 14}, {5, 9}, {2, 23}}) {
            if (K == 0 && taps == 9) continue;
            ++cases;
            if (!check_cv(mk, taps, mv * mk.vl, K, hw.first, hw.second, &worst)) ++bad;
          }
    for (int M : {1, 2, 3, 4, 8, 12})
      for (int K : {1, 3, 8}) {
        if (M > 4 && std::strcmp(mk.name, "neon") != 0) continue;  // NEON's row bands: tiles of 4
        for (int H : {1, 2, 5, 13, 17})
          for (int row : {3, 9, 16, 30, 58}) {
            ++cases;
            if (!check_rows(mk, M, K, H, row, (H + row) % 2 == 1, &worst)) ++bad;
          }
      }
    for (int K : {1, 3, 8})
      for (int nv : {1, 3, 8}) {
        ++cases;
        if (!check_gather(mk, K, nv * 16, &worst)) ++bad;
      }
    for (int K : {1, 4, 9, 17})
      for (int nv : {1, 2, 5, 7})  // NEON: 4 vectors an iteration, then the rest
        for (int bn : {0, 1, 2}) {
          ++cases;
          if (!check_clamp_gather(mk, K, nv * mk.vl, bn)) ++bad;
        }
    std::printf("%s (vl %d, mr %d): %d cases, %d failed, max abs diff %.3g\n", mk.name, mk.vl, mk.mr_max, cases, bad,
                worst);
    failures += bad;
  }
  if (fp16) failures += test_f16();
  std::printf(failures ? "FAILED\n" : "OK\n");
  return failures ? 1 : 0;
}
