#include "ops/grouped_conv.h"

#include <algorithm>
#include <string>

#include "ukernels/config.h"

namespace cdops {

namespace {
constexpr Need need{"GroupedConv"};
}  // namespace

GroupedConv::GroupedConv(int64_t group, int64_t relu) : group_(group), relu_(relu) {
  need(group_ >= 1, "attribute group must be >= 1 (got " + str(group_) + ")");
  need(relu_ == 0 || relu_ == 1, "attribute relu must be 0 or 1 (got " + str(relu_) + ")");
}

void GroupedConv::pack(const float* W, const int64_t* ws, std::size_t wrank, const float* B, int64_t n_bias,
                       const MicroKernels& mk, GroupedConvPacked& out) const {
  need(wrank == 4, "W must have rank 4 [O, C/group, k, k] (got rank " + std::to_string(wrank) + ")");
  const int64_t O = ws[0], Cg = ws[1], k = ws[2];
  need(O >= 1 && Cg >= 1, "W must have O >= 1 and C/group >= 1");
  need(k == ws[3] && (k == 1 || k == 3), "W must be [O, C/group, 1, 1] or [O, C/group, 3, 3]");
  need(O % group_ == 0, "W's O (" + str(O) + ") must be divisible by group (" + str(group_) + ")");
  need(O <= (int64_t(1) << 24) && Cg <= (int64_t(1) << 24), "W is too large");
  need(n_bias == 0 || n_bias == O, "B must have O = " + str(O) + " elements (got " + str(n_bias) + ")");
  const int64_t taps = k * k, Mg = O / group_;
  out.O = O;
  out.Cg = Cg;
  out.k = k;
  out.mk = &mk;
  out.w.reserve_zero(static_cast<std::size_t>(O * Cg * taps));
  for (int64_t g = 0; g < group_; ++g)
    pack_weights(mk, W + g * Mg * Cg * taps, static_cast<int>(Mg), static_cast<int>(Cg), static_cast<int>(taps), 0,
                 out.w.data() + g * Mg * Cg * taps);
  out.has_cv = plan::chanvec_table(mk, Mg, false) != nullptr;
  if (out.has_cv) {
    out.wcv.reserve_zero(static_cast<std::size_t>(O * Cg * taps));
    for (int64_t g = 0; g < group_; ++g)
      mk.pack_cv(W + g * Mg * Cg * taps, static_cast<int>(Mg), static_cast<int>(Cg), static_cast<int>(taps),
                 out.wcv.data() + g * Mg * Cg * taps);
  }
  out.b.reserve_zero(static_cast<std::size_t>(O));
  out.has_bias = n_bias == O;
  if (out.has_bias) std::copy(B, B + O, out.b.data());
}

// A 1x1 needs no padding: the kernel reads X and writes Y in place, in chunks of whole vectors; the
// last HW % 16 positions of each plane go through a small zero-padded scratch.
void GroupedConv::run_1x1_direct(const GroupedConvPacked& p, const float* X, int64_t N, int64_t C, int64_t H,
                                 int64_t W, float* Y, const ParallelFor& par) const {
  const MicroKernels& mk = *p.mk;
  const int64_t O = p.O, Cg = p.Cg, Mg = O / group_, HW = H * W;
  if (plan::use_chanvec_1x1(p.has_cv ? &mk : nullptr, W)) {  // small images: channel vectors straight from X to Y (row = W)
    par(static_cast<std::size_t>(N * group_), [&](std::size_t it) {
      const int64_t gg = static_cast<int64_t>(it) % group_, n = static_cast<int64_t>(it) / group_;
      CvArgs a;
      a.in = X + (n * C + gg * Cg) * HW;
      a.in_stride = HW;
      a.K = static_cast<int>(Cg);
      a.w = p.wcv.data() + gg * Cg * Mg;
      a.bias = p.has_bias ? p.b.data() + gg * Mg : nullptr;
      a.M = static_cast<int>(Mg);
      a.out = Y + (n * O + gg * Mg) * HW;
      a.out_stride = HW;
      a.H = static_cast<int>(H);
      a.W = static_cast<int>(W);
      a.row = W;
      a.relu = static_cast<int>(relu_);
      mk.conv1x1_cv(a);
    });
    return;
  }
  const std::ptrdiff_t main = HW / 16 * 16, tail = HW - main;
  const int chunk = main ? plan::chunk(main, Cg, 1) : 16;
  const int64_t nch = main ? (main + chunk - 1) / chunk : 0;
  const int64_t items = nch + (tail ? 1 : 0);
  par(static_cast<std::size_t>(N * group_ * items), [&](std::size_t it) {
    const int64_t c = static_cast<int64_t>(it) % items, gg = static_cast<int64_t>(it) / items % group_,
                  n = static_cast<int64_t>(it) / items / group_;
    ConvArgs ca;
    ca.K = static_cast<int>(Cg);
    ca.w = p.w.data() + gg * Cg * Mg;
    ca.bias = p.has_bias ? p.b.data() + gg * Mg : nullptr;
    ca.M = static_cast<int>(Mg);
    ca.relu = static_cast<int>(relu_);
    const float* xg = X + (n * C + gg * Cg) * HW;
    float* yg = Y + (n * O + gg * Mg) * HW;
    if (c < nch) {
      const std::ptrdiff_t q0 = c * chunk;
      ca.in = xg + q0;
      ca.in_stride = HW;
      ca.out = yg + q0;
      ca.out_stride = HW;
      ca.nq = static_cast<int>(std::min<std::ptrdiff_t>(chunk, main - q0));
      mk.conv1x1(ca);
      return;
    }
    static thread_local AlignedBuf<float> scratch;
    scratch.reserve_zero(static_cast<std::size_t>((Cg + Mg) * 16));
    float* sin = scratch.data();
    float* sout = sin + Cg * 16;
    for (int64_t k = 0; k < Cg; ++k) {
      std::memset(sin + k * 16, 0, sizeof(float) * 16);
      std::memcpy(sin + k * 16, xg + k * HW + main, sizeof(float) * tail);
    }
    ca.in = sin;
    ca.in_stride = 16;
    ca.out = sout;
    ca.out_stride = 16;
    ca.nq = 16;
    mk.conv1x1(ca);
    for (int64_t m = 0; m < Mg; ++m) std::memcpy(yg + m * HW + main, sout + m * 16, sizeof(float) * tail);
  });
}

void GroupedConv::run(const GroupedConvPacked& p, const float* X, int64_t N, int64_t C, int64_t H, int64_t W,
                      float* Y, const ParallelFor& par) const {
  const MicroKernels& mk = *p.mk;
  need(C == p.Cg * group_, "X has " + str(C) + " channels, W expects C/group * group = " + str(p.Cg * group_));
  need(H >= 1 && W >= 1 && H <= 65536 && W <= 65536 && H * (W + 2) <= (int64_t(1) << 28),
       "X must have 1 <= H, W and H * (W + 2) below 2^28");
  if (N == 0) return;
  const int64_t O = p.O;
  if (p.k == 1) {
    run_1x1_direct(p, X, N, C, H, W, Y, par);
    return;
  }
  WorkspaceLease<Workspace> lease(ws_);
  Workspace& ws = lease.get();
  const Geometry g(static_cast<int>(H), static_cast<int>(W));
  if (!(ws.N == N && ws.C == C && ws.O == O && ws.H == H && ws.W == W)) {
    if (!ws.in.reserve_zero(static_cast<std::size_t>(N * C * g.stride))) ws.in.zero();
    ws.out.reserve_zero(static_cast<std::size_t>(N * O * g.stride));
    ws.N = N, ws.C = C, ws.O = O, ws.H = H, ws.W = W;
  }
  const std::ptrdiff_t PS = g.stride, HW = H * W;
  float* in = ws.in.data();
  float* outb = ws.out.data();
  par(static_cast<std::size_t>(N * C), [&](std::size_t i) { g.copy_in(X + i * HW, in + i * PS); });

  const int64_t Cg = p.Cg, Mg = O / group_, taps = p.k * p.k;
  // Small images: the channel-vectorised kernels (as DenseBlock), one call per (image, group).
  const MicroKernels* cv_mk = p.has_cv ? &mk : nullptr;
  const bool cv = p.k == 1 ? plan::use_chanvec_1x1(cv_mk, W) : plan::use_chanvec_3x3(mk, cv_mk, W);
  // Few outputs per group on wide images: the row-band 3x3 (as DenseBlock).
  const MicroKernels* rows_mk = p.k == 3 ? plan::rows_3x3_table(mk, Mg, W, cv) : nullptr;
  const bool rows = rows_mk != nullptr;
  const int chunk = (cv || rows) ? static_cast<int>(g.Qr) : plan::chunk(g.Qr, Cg, static_cast<int>(taps));
  const int64_t nch = (g.Qr + chunk - 1) / chunk;
  par(static_cast<std::size_t>(N * group_ * nch), [&](std::size_t it) {
    const int64_t c = static_cast<int64_t>(it) % nch, gg = static_cast<int64_t>(it) / nch % group_,
                  n = static_cast<int64_t>(it) / nch / group_;
    const std::ptrdiff_t q0 = c * chunk;
    if (rows) {  // few outputs per group on wide images: row bands, whole plane (q0 = 0)
      ConvArgs a;
      a.in = in + (n * C + gg * Cg) * PS + g.origin + g.Wp;
      a.in_stride = PS;
      a.K = static_cast<int>(Cg);
      a.w = p.w.data() + gg * Cg * taps * Mg;
      a.bias = p.has_bias ? p.b.data() + gg * Mg : nullptr;
      a.M = static_cast<int>(Mg);
      a.out = outb + (n * O + gg * Mg) * PS + g.origin + g.Wp;
      a.out_stride = PS;
      a.nq = static_cast<int>(g.Q);
      a.relu = static_cast<int>(relu_);
      a.row = g.Wp;
      rows_mk->conv3x3_rows(a);
      return;
    }
    if (cv) {
      CvArgs a;
      a.in = in + (n * C + gg * Cg) * PS + g.origin + g.Wp + 1;
      a.in_stride = PS;
      a.K = static_cast<int>(Cg);
      a.w = p.wcv.data() + gg * Cg * taps * Mg;
      a.bias = p.has_bias ? p.b.data() + gg * Mg : nullptr;
      a.M = static_cast<int>(Mg);
      a.out = outb + (n * O + gg * Mg) * PS + g.origin + g.Wp + 1;
      a.out_stride = PS;
      a.H = static_cast<int>(H);
      a.W = static_cast<int>(W);
      a.row = g.Wp;
      a.relu = static_cast<int>(relu_);
      (p.k == 1 ? mk.conv1x1_cv : mk.conv3x3_cv)(a);
      return;
    }
    ConvArgs ca;
    ca.in = in + (n * C + gg * Cg) * PS + g.origin + g.Wp + q0;
    ca.in_stride = PS;
    ca.K = static_cast<int>(Cg);
    ca.w = p.w.data() + gg * Cg * taps * Mg;
    ca.bias = p.has_bias ? p.b.data() + gg * Mg : nullptr;
    ca.M = static_cast<int>(Mg);
    ca.out = outb + (n * O + gg * Mg) * PS + g.origin + g.Wp + q0;
    ca.out_stride = PS;
    ca.nq = static_cast<int>(std::min<std::ptrdiff_t>(chunk, g.Qr - q0));
    ca.relu = static_cast<int>(relu_);
    ca.row = g.Wp;
    (p.k == 1 ? mk.conv1x1 : mk.conv3x3)(ca);
  });
  par(static_cast<std::size_t>(N * O), [&](std::size_t i) { g.copy_out(outb + i * PS, Y + i * HW); });
}

}  // namespace cdops
