#include "ops/dense_block.h"

#include <algorithm>
#include <string>

#include "ukernels/bn_fold.h"
#include "ukernels/config.h"

namespace cdops {

namespace {
constexpr Need need{"DenseBlock"};

// The kernel table and argument structs of an element type: one per-layer plan serves fp32 and fp16.
template <typename T>
struct Elem;
template <>
struct Elem<float> {
  using Table = MicroKernels;
  using Conv = ConvArgs;
  using Cv = CvArgs;
  using Gather = GatherArgs;
  using Mask = uint32_t;
};
template <>
struct Elem<half_t> {
  using Table = F16Kernels;
  using Conv = F16ConvArgs;
  using Cv = F16CvArgs;
  using Gather = F16GatherArgs;
  using Mask = uint16_t;
};

// Thread-local scratch for the BN+ReLU'd picked channels of one 1x1 work item.
template <typename T>
T* act_scratch(std::size_t n) {
  static thread_local AlignedBuf<T> buf;
  buf.reserve_zero(n);
  return buf.data();
}

// Runs f(group, q0, nq) for every group in [0, groups) and chunk of positions [s, s + len) in
// parallel (chunk positions each, the last one shorter).
template <typename F>
void par_group_chunks(const ParallelFor& par, int64_t groups, std::ptrdiff_t s, std::ptrdiff_t len, int chunk,
                      const F& f) {
  const int64_t nch = (len + chunk - 1) / chunk;
  par(static_cast<std::size_t>(groups * nch), [&](std::size_t it) {
    const int64_t c = static_cast<int64_t>(it) % nch, j = static_cast<int64_t>(it) / nch;
    f(j, s + c * chunk, static_cast<int>(std::min<std::ptrdiff_t>(chunk, len - c * chunk)));
  });
}

// Layer l's slices of the packed parameters (the fp32 arrays or their halves).
template <typename T>
struct LayerParams {
  const int32_t* idx;  // the picked channels
  const T *sc, *sh, *w1, *b1, *w3;
  LayerParams(const DenseBlockPacked& p, int l, int64_t mid, const T* scale, const T* shift, const T* w1s,
              const T* b1s, const T* w3s)
      : idx(p.index.data() + p.off_kept[l]),
        sc(scale + p.off_kept[l]),
        sh(shift + p.off_kept[l]),
        w1(w1s + p.off_w1[l]),
        b1(b1s + l * mid),
        w3(w3s + p.off_w3[l]) {}
};

// One layer of one image in the padded planes of the block buffer and mid: where each step reads
// and writes, the same in fp32 and fp16. The plan (which kernel, folded or not) stays with run.
template <typename T>
struct LayerBuffers {
  using E = Elem<T>;
  Geometry g;
  T* block;  // [Ctot] planes: the input channels, then every layer's new ones
  T* mid;    // [mid] planes: the 1x1's output, channel-shuffled
  const typename E::Mask* mask;
  int64_t g1, Cl, mo, M3, K3;  // 1x1 groups, the layer's first new channel, the group sizes

  // Position q0 (from row 1 column 0) of channel c of a buffer.
  T* at(T* buf, int64_t c, std::ptrdiff_t q0) const { return buf + c * g.stride + g.origin + g.Wp + q0; }

  // Block pointers of the n channels ch[0, n) at q0 (thread-local; room for `room` of them).
  const T* const* picked(const int32_t* ch, int n, int64_t room, std::ptrdiff_t q0) const {
    static thread_local std::vector<const T*> ptrs;
    ptrs.resize(static_cast<std::size_t>(room));
    for (int k = 0; k < n; ++k) ptrs[k] = at(block, ch[k], q0);
    return ptrs.data();
  }
  // The gather of K picked channels into a thread-local scratch of nq positions each (room for kk).
  typename E::Gather gather_args(const T* const* in, const T* scale, const T* shift, int K, int64_t kk,
                                 int nq) const {
    typename E::Gather ga;
    ga.in = in;
    ga.scale = scale;
    ga.shift = shift;
    ga.K = K;
    ga.out = act_scratch<T>(static_cast<std::size_t>(kk * nq));
    ga.out_stride = nq;
    ga.nq = nq;
    return ga;
  }
  // The channel-vectorised 1x1 of group j over the whole plane, from the gathered act (nq each).
  // The channel shuffle: pre-shuffle row j*mo + m is stored as mid channel m*G1 + j.
  typename E::Cv cv1_args(int64_t j, const T* act, int nq, int K, const T* w, const T* bias) const {
    typename E::Cv cv;
    cv.in = act + 1;  // q = 1 is pixel (0, 0) (whole plane: q0 = 0)
    cv.in_stride = nq;
    cv.K = K;
    cv.w = w;
    cv.bias = bias;
    cv.M = static_cast<int>(mo);
    cv.out = at(mid, j, 1);
    cv.out_stride = g.stride * g1;
    cv.H = g.H;
    cv.W = g.W;
    cv.row = g.Wp;
    cv.relu = 1;
    return cv;
  }
  // The position-vector 1x1 of group j over [q0, q0+nq) into mid (shuffled, as above); the
  // caller sets its input.
  typename E::Conv conv1_args(int64_t j, std::ptrdiff_t q0, int nq, int K, const T* w, const T* bias) const {
    typename E::Conv ca;
    ca.K = K;
    ca.w = w;
    ca.bias = bias;
    ca.M = static_cast<int>(mo);
    ca.out = at(mid, j, q0);
    ca.out_stride = g.stride * g1;
    ca.nq = nq;
    ca.mask = mask + q0;
    ca.relu = 1;
    return ca;
  }
  // The position-vector and row-band 3x3 of mid group gg over [q0, q0+nq); w3: the layer's.
  typename E::Conv conv3_args(int64_t gg, std::ptrdiff_t q0, int nq, const T* w3) const {
    typename E::Conv ca;
    ca.in = at(mid, gg * K3, q0);
    ca.in_stride = g.stride;
    ca.K = static_cast<int>(K3);
    ca.w = w3 + gg * K3 * 9 * M3;
    ca.M = static_cast<int>(M3);
    ca.out = at(block, Cl + gg * M3, q0);
    ca.out_stride = g.stride;
    ca.nq = nq;
    ca.mask = mask + q0;
    ca.row = g.Wp;
    return ca;
  }
  // The channel-vectorised 3x3 of mid group gg over the whole plane; w3cv: the layer's.
  typename E::Cv cv3_args(int64_t gg, const T* w3cv) const {
    typename E::Cv cv;
    cv.in = at(mid, gg * K3, 1);
    cv.in_stride = g.stride;
    cv.K = static_cast<int>(K3);
    cv.w = w3cv + gg * K3 * 9 * M3;
    cv.M = static_cast<int>(M3);
    cv.out = at(block, Cl + gg * M3, 1);
    cv.out_stride = g.stride;
    cv.H = g.H;
    cv.W = g.W;
    cv.row = g.Wp;
    return cv;
  }
  // Grouped 3x3 of mid group gg -> the layer's new channels, positions [q0, q0+nq): channel
  // vectors (cvk) or position vectors (tk).
  void step_3x3(const typename E::Table& tk, const typename E::Table* cvk, bool use_cv3, const T* w3,
                const T* w3cv, int64_t gg, std::ptrdiff_t q0, int nq) const {
    if (use_cv3)
      cvk->conv3x3_cv(cv3_args(gg, w3cv));
    else
      tk.conv3x3(conv3_args(gg, q0, nq, w3));
  }
};
}  // namespace

DenseBlock::DenseBlock(const DenseBlockAttrs& a)
    : growth_(a.growth), mid_(a.mid), g1_(a.groups_1x1), g3_(a.groups_3x3), kept_(a.kept) {
  need(growth_ > 0, "attribute growth must be > 0 (got " + str(growth_) + ")");
  need(mid_ > 0, "attribute mid must be > 0 (got " + str(mid_) + ")");
  need(g1_ > 0, "attribute groups_1x1 must be > 0 (got " + str(g1_) + ")");
  need(g3_ > 0, "attribute groups_3x3 must be > 0 (got " + str(g3_) + ")");
  need(!kept_.empty(), "attribute kept must list at least one layer");
  need(mid_ % g1_ == 0, "mid (" + str(mid_) + ") must be divisible by groups_1x1 (" + str(g1_) + ")");
  need(mid_ % g3_ == 0, "mid (" + str(mid_) + ") must be divisible by groups_3x3 (" + str(g3_) + ")");
  need(growth_ % g3_ == 0, "growth (" + str(growth_) + ") must be divisible by groups_3x3 (" + str(g3_) + ")");
  need(growth_ <= (int64_t(1) << 20) && mid_ <= (int64_t(1) << 20) && kept_.size() <= 4096,
       "attributes out of the supported range");
  for (std::size_t l = 0; l < kept_.size(); ++l) {
    need(kept_[l] > 0 && kept_[l] <= (int64_t(1) << 24),
         "kept[" + str(l) + "] must be > 0 (got " + str(kept_[l]) + ")");
    need(kept_[l] % g1_ == 0, "kept[" + str(l) + "] (" + str(kept_[l]) + ") must be divisible by groups_1x1 (" +
                                  str(g1_) + ")");
  }
  if (a.precision == Precision::fp16) {
    f16_ = f16_kernels();
    need(f16_ != nullptr, std::string("precision fp16 needs FP16 arithmetic (ARMv8.2 fphp+asimdhp, e.g. Cortex-A76 / "
                                      "Raspberry Pi 5); ") +
                              f16_unavailable_reason());
  }
}

void DenseBlock::pack(const DenseBlockParams& p, const MicroKernels& mk, DenseBlockPacked& out) const {
  const int L = layers();
  std::size_t n_kept = 0, n_w1 = 0;
  out.off_kept.assign(L + 1, 0);
  out.off_w1.assign(L + 1, 0);
  out.off_w3.assign(L + 1, 0);
  const std::size_t w3_layer = static_cast<std::size_t>(growth_ * (mid_ / g3_) * 9);
  for (int l = 0; l < L; ++l) {
    out.off_kept[l] = n_kept;
    out.off_w1[l] = n_w1;
    out.off_w3[l] = static_cast<std::size_t>(l) * w3_layer;
    n_kept += static_cast<std::size_t>(kept_[l]);
    n_w1 += static_cast<std::size_t>(mid_ * (kept_[l] / g1_));
  }
  out.off_kept[L] = n_kept;
  out.off_w1[L] = n_w1;
  out.off_w3[L] = L * w3_layer;
  auto size_is = [&](std::size_t got, std::size_t want, const char* name) {
    need(got == want, std::string("input ") + name + " has " + std::to_string(got) + " elements, expected " +
                          std::to_string(want) + " from the attributes");
  };
  size_is(p.n_index, n_kept, "index");
  size_is(p.n_scale, n_kept, "bn_scale");
  size_is(p.n_shift, n_kept, "bn_shift");
  size_is(p.n_w1, n_w1, "w1");
  size_is(p.n_b1, static_cast<std::size_t>(L * mid_), "b1");
  size_is(p.n_w3, L * w3_layer, "w3");

  out.index.resize(n_kept);
  out.max_idx.assign(L, -1);
  for (int l = 0; l < L; ++l) {
    for (std::size_t i = out.off_kept[l]; i < out.off_kept[l + 1]; ++i) {
      const int64_t v = p.index[i];
      need(v >= 0 && v < (int64_t(1) << 30),
           "index value " + str(v) + " (layer " + str(l) + ", position " + std::to_string(i) + ") is out of range");
      out.index[i] = static_cast<int32_t>(v);
      out.max_idx[l] = std::max(out.max_idx[l], v);
    }
  }
  out.mk = &mk;
  if (f16_) {
    pack_f16(p, out);
    return;
  }
  out.scale.assign(p.scale, p.scale + n_kept);
  out.shift.assign(p.shift, p.shift + n_kept);
  // b1 comes in shuffled order (channel m*G1 + j); the 1x1 adds it by pre-shuffle row j*mo + m
  out.b1.resize(static_cast<std::size_t>(L * mid_));
  for (int l = 0; l < L; ++l)
    for (int64_t j = 0; j < g1_; ++j)
      for (int64_t m = 0; m < mid_ / g1_; ++m)
        out.b1[l * mid_ + j * (mid_ / g1_) + m] = p.b1[l * mid_ + m * g1_ + j];

  // Per layer, per group: the ISA's packed layout of [mo][K] (1x1) and [M3][K3][9] (3x3), and the
  // channel-vectorised layouts (same offsets) where the outputs of a group fill whole vectors.
  out.w1.reserve_zero(n_w1);
  const int64_t mo = mid_ / g1_, M3 = growth_ / g3_, K3 = mid_ / g3_;
  out.cv1 = plan::chanvec_table(mk, mo, true);
  out.cv3 = plan::chanvec_table(mk, M3, true);
  if (out.cv1) out.w1cv.reserve_zero(n_w1);
  const bool fuse = plan::fuse_gather(mk, mo);
  out.folded = fold_1x1(p, fuse, out);
  out.fused = out.folded && fuse;
  for (int l = 0; l < L && !out.folded; ++l) {
    const int64_t K = kept_[l] / g1_;
    for (int64_t j = 0; j < g1_; ++j) {
      const float* w = p.w1 + out.off_w1[l] + j * mo * K;
      const std::size_t o = out.off_w1[l] + j * mo * K;
      mk.pack_conv1x1(w, static_cast<int>(mo), static_cast<int>(K), 0, out.w1.data() + o);
      if (out.cv1) out.cv1->pack_cv(w, static_cast<int>(mo), static_cast<int>(K), 1, out.w1cv.data() + o);
    }
  }
  out.w3.reserve_zero(L * w3_layer);
  for (int l = 0; l < L; ++l)
    for (int64_t g = 0; g < g3_; ++g)
      mk.pack_conv3x3(p.w3 + out.off_w3[l] + g * M3 * K3 * 9, static_cast<int>(M3), static_cast<int>(K3),
                      out.w3.data() + out.off_w3[l] + g * M3 * K3 * 9);
  if (out.cv3) {
    out.w3cv.reserve_zero(L * w3_layer);
    for (int l = 0; l < L; ++l)
      for (int64_t g = 0; g < g3_; ++g)
        out.cv3->pack_cv(p.w3 + out.off_w3[l] + g * M3 * K3 * 9, static_cast<int>(M3), static_cast<int>(K3), 9,
                   out.w3cv.data() + out.off_w3[l] + g * M3 * K3 * 9);
  }
}

// The 1x1's parameters with BN + ReLU folded in, per layer and group: weights packed into out.w1
// (for the fused 1x1 when fuse, else for the 1x1 after the clamp gather) and out.w1cv (when cv1)
// at the group's usual offsets (a group keeps at most K inputs), the bias, the kept inputs' channels
// and thresholds. False, with nothing packed, when some scale or shift is not finite (then every
// group gathers BN + ReLU unfolded).
bool DenseBlock::fold_1x1(const DenseBlockParams& p, bool fuse, DenseBlockPacked& out) const {
  const int L = layers();
  const int64_t mo = mid_ / g1_;
  std::vector<BnFold> folds(static_cast<std::size_t>(L * g1_));
  for (int l = 0; l < L; ++l) {
    const int64_t K = kept_[l] / g1_;
    for (int64_t j = 0; j < g1_; ++j) {
      const std::size_t k0 = out.off_kept[l] + j * K;
      if (!fold_bn_relu(p.w1 + out.off_w1[l] + j * mo * K, out.b1.data() + l * mid_ + j * mo, static_cast<int>(mo),
                        static_cast<int>(K), p.scale + k0, p.shift + k0, folds[l * g1_ + j]))
        return false;
    }
  }
  const std::size_t n_kept = out.off_kept[L];
  out.fold_index.assign(n_kept, 0);
  out.fold_thresh.assign(n_kept, 0.0f);
  out.fold_k.assign(folds.size(), 0);
  out.fold_nmax.assign(folds.size(), 0);
  out.fold_b1.assign(static_cast<std::size_t>(L * mid_), 0.0f);
  for (int l = 0; l < L; ++l) {
    const int64_t K = kept_[l] / g1_;
    for (int64_t j = 0; j < g1_; ++j) {
      BnFold& f = folds[l * g1_ + j];
      const std::size_t k0 = out.off_kept[l] + j * K;
      const int kf = static_cast<int>(f.order.size());
      for (int k = 0; k < kf; ++k) {
        out.fold_index[k0 + k] = out.index[k0 + f.order[k]];
        out.fold_thresh[k0 + k] = f.thresh[k];
      }
      out.fold_k[l * g1_ + j] = kf;
      out.fold_nmax[l * g1_ + j] = f.n_max;
      std::copy(f.bias.begin(), f.bias.end(), out.fold_b1.begin() + l * mid_ + j * mo);
      const std::size_t o = out.off_w1[l] + j * mo * K;
      out.mk->pack_conv1x1(f.w.data(), static_cast<int>(mo), kf, fuse ? 1 : 0, out.w1.data() + o);
      if (out.cv1) out.cv1->pack_cv(f.w.data(), static_cast<int>(mo), kf, 1, out.w1cv.data() + o);
      f = BnFold();  // its weights are packed: free them as we go
    }
  }
  return true;
}

void DenseBlock::prepare(Workspace& ws, int64_t N, int64_t Ctot, int64_t H, int64_t W) const {
  if (ws.N == N && ws.C == Ctot && ws.H == H && ws.W == W) return;
  const Geometry g(static_cast<int>(H), static_cast<int>(W));
  ws.mask.reserve_zero(static_cast<std::size_t>(g.mask_size()));
  g.fill_mask(ws.mask.data());
  if (f16_) {
    if (!ws.h_block.reserve_zero(static_cast<std::size_t>(N * Ctot * g.stride))) ws.h_block.zero();
    if (!ws.h_mid.reserve_zero(static_cast<std::size_t>(N * mid_ * g.stride))) ws.h_mid.zero();
    ws.h_mask.reserve_zero(static_cast<std::size_t>(g.mask_size()));
    for (std::ptrdiff_t i = 0; i < g.mask_size(); ++i) ws.h_mask.data()[i] = ws.mask.data()[i] ? 0xFFFFu : 0u;
  } else {
    if (!ws.block.reserve_zero(static_cast<std::size_t>(N * Ctot * g.stride))) ws.block.zero();
    if (!ws.mid.reserve_zero(static_cast<std::size_t>(N * mid_ * g.stride))) ws.mid.zero();
  }
  ws.N = N;
  ws.C = Ctot;
  ws.H = H;
  ws.W = W;
}

void DenseBlock::run(const DenseBlockPacked& p, const float* X, int64_t N, int64_t C0, int64_t H, int64_t W,
                     float* Y, const ParallelFor& par) const {
  const int L = layers();
  const MicroKernels& mk = *p.mk;
  need(N >= 0 && C0 >= 1 && H >= 1 && W >= 1, "X must have C0, H, W >= 1");
  need(H <= 65536 && W <= 65536 && H * (W + 2) <= (int64_t(1) << 28) && C0 <= (int64_t(1) << 24),
       "X is too large (H * (W + 2) must stay below 2^28)");
  for (int l = 0; l < L; ++l)
    need(p.max_idx[l] < C0 + l * growth_, "index value " + str(p.max_idx[l]) + " of layer " + str(l) +
                                              " is out of range: layer " + str(l) + " has " +
                                              str(C0 + l * growth_) + " input channels");
  if (N == 0) return;
  const int64_t Ctot = C0 + L * growth_;
  if (N > 1) {
    // One image at a time through the whole block: the workspace (block buffer and 1x1 scratch) is
    // one image's, so it stays in cache and its memory does not grow with the batch. The threads
    // share each image's groups and position chunks.
    for (int64_t n = 0; n < N; ++n) run(p, X + n * C0 * H * W, 1, C0, H, W, Y + n * Ctot * H * W, par);
    return;
  }
  if (f16_) {
    run_f16(p, X, C0, H, W, Y, par);
    return;
  }

  WorkspaceLease<Workspace> lease(ws_);
  Workspace& ws = lease.get();
  prepare(ws, N, Ctot, H, W);

  const Geometry g(static_cast<int>(H), static_cast<int>(W));
  const std::ptrdiff_t PS = g.stride, HW = H * W;
  float* block = ws.block.data();
  float* midb = ws.mid.data();
  const uint32_t* mask = ws.mask.data();
  const float* Xc = X;
  par(static_cast<std::size_t>(N * C0), [&](std::size_t i) {
    const int64_t n = static_cast<int64_t>(i) / C0, c = static_cast<int64_t>(i) % C0;
    g.copy_in(Xc + i * HW, block + (n * Ctot + c) * PS);
  });

  const int64_t mo = mid_ / g1_, M3 = growth_ / g3_, K3 = mid_ / g3_;
  for (int l = 0; l < L; ++l) {
    const int64_t Cl = C0 + l * growth_;
    const int64_t K = kept_[l] / g1_;
    const LayerBuffers<float> lb{g, block, midb, mask, g1_, Cl, mo, M3, K3};
    const LayerParams<float> lp(p, l, mid_, p.scale.data(), p.shift.data(), p.w1.data(), p.b1.data(), p.w3.data());
    const int32_t* fidx = p.folded ? p.fold_index.data() + p.off_kept[l] : nullptr;
    const float* fth = p.folded ? p.fold_thresh.data() + p.off_kept[l] : nullptr;
    const float* fb1 = p.folded ? p.fold_b1.data() + l * mid_ : nullptr;
    // BN + ReLU folded into the 1x1's weights and bias (every scale and shift finite): a group's
    // kept inputs in the folded order, each clamped against its threshold. Where one register tile
    // covers a group's 1x1 outputs the clamp is fused into the 1x1's loads; else the picked channels
    // go through the gather (the clamp, or BN + ReLU unfolded) once into a thread-local scratch, then
    // the 1x1.
    const bool folded = p.folded, fused = p.fused;
    // Small images: outputs along the lanes (position vectors would be mostly padding there).
    const bool use_cv1 = plan::use_chanvec_1x1(p.cv1, W);
    const bool use_cv3 = plan::use_chanvec_3x3(mk, p.cv3, W);
    const float* w3cv = use_cv3 ? p.w3cv.data() + p.off_w3[l] : nullptr;
    // 3x3 with few outputs per group on wide images: row bands.
    const MicroKernels* rows_mk = plan::rows_3x3_table(mk, M3, W, use_cv3);
    const bool use_rows3 = rows_mk != nullptr;

    // BN+ReLU of group j's picked channels, grouped 1x1, bias, ReLU -> mid, positions [q0, q0+nq).
    auto step_1x1 = [&](int64_t j, std::ptrdiff_t q0, int nq) {
      const std::size_t f = static_cast<std::size_t>(l * g1_ + j);
      const int Kg = folded ? p.fold_k[f] : static_cast<int>(K);  // inputs the 1x1 reads
      const float* const* ptrs = lb.picked((folded ? fidx : lp.idx) + j * K, Kg, K, q0);
      // the picked channels clamped (or BN + ReLU'd) once into a thread-local scratch of nq positions each
      auto gathered = [&]() {
        GatherArgs ga = lb.gather_args(ptrs, lp.sc + j * K, lp.sh + j * K, Kg, K, nq);
        if (folded) {
          ga.thresh = fth + j * K;
          ga.n_max = p.fold_nmax[f];
        }
        mk.bnrelu_gather(ga);
        return ga.out;
      };
      const float* bias = (folded ? fb1 : lp.b1) + j * mo;
      if (use_cv1) {
        p.cv1->conv1x1_cv(lb.cv1_args(j, gathered(), nq, Kg, p.w1cv.data() + p.off_w1[l] + j * K * mo, bias));
        return;
      }
      ConvArgs ca = lb.conv1_args(j, q0, nq, Kg, lp.w1 + j * K * mo, bias);
      if (fused) {  // the kept inputs in the folded order, against their thresholds
        ca.in_ptrs = ptrs;
        ca.bn_thresh = fth + j * K;
        ca.n_max = p.fold_nmax[f];
      } else {
        ca.in = gathered();
        ca.in_stride = nq;
      }
      mk.conv1x1(ca);
    };

    // The shuffle makes every 3x3 group read mid channels of every 1x1 group: the 3x3 of a position
    // runs once every group's 1x1 has covered it and the row below. On large images the two
    // alternate over bands of positions (plan::band_positions), so that the 3x3 finds mid in cache.
    auto run_1x1 = [&](std::ptrdiff_t s, std::ptrdiff_t len) {
      par_group_chunks(par, g1_, s, len, use_cv1 ? static_cast<int>(len) : plan::chunk(len, K, 1), step_1x1);
    };
    auto run_3x3 = [&](std::ptrdiff_t s, std::ptrdiff_t len) {  // rows kernel: whole image rows
      const int chunk = (use_cv3 || use_rows3) ? static_cast<int>(len) : plan::chunk(len, K3, 9);
      par_group_chunks(par, g3_, s, len, chunk, [&](int64_t gg, std::ptrdiff_t q0, int nq) {
        if (use_rows3)
          rows_mk->conv3x3_rows(lb.conv3_args(gg, q0, nq, lp.w3));
        else
          lb.step_3x3(mk, p.cv3, use_cv3, lp.w3, w3cv, gg, q0, nq);
      });
    };
    const std::ptrdiff_t band = (use_cv1 || use_cv3) ? g.Qr : plan::band_positions(g.Qr, Cl + mid_ + growth_, mid_ * PS);
    std::ptrdiff_t done1 = 0, done3 = 0;  // positions whose 1x1 / 3x3 ran
    while (done3 < g.Qr) {
      if (done1 < g.Qr) {
        const std::ptrdiff_t e1 = std::min<std::ptrdiff_t>(g.Qr, done1 + band);
        run_1x1(done1, e1 - done1);
        done1 = e1;
      }
      // The 3x3 of position q reads mid up to q + Wp + 1. The rows kernel runs whole rows (and may
      // write up to a vector past them, into the next row, which the next band writes again).
      std::ptrdiff_t e3;
      if (use_rows3)
        e3 = done1 == g.Qr ? g.Q : std::max<std::ptrdiff_t>(0, done1 / g.Wp - 1) * g.Wp;
      else
        e3 = done1 == g.Qr ? g.Qr : std::max<std::ptrdiff_t>(0, (done1 - g.Wp - 1) / 16 * 16);
      if (e3 > done3) run_3x3(done3, e3 - done3);
      done3 = (use_rows3 && e3 == g.Q) ? g.Qr : std::max(done3, e3);
    }
  }

  par(static_cast<std::size_t>(N * Ctot), [&](std::size_t i) {
    const int64_t n = static_cast<int64_t>(i) / Ctot, c = static_cast<int64_t>(i) % Ctot;
    float* dst = Y + i * HW;
    if (c < C0)
      std::memcpy(dst, Xc + (n * C0 + c) * HW, sizeof(float) * HW);
    else
      g.copy_out(block + i * PS, dst);
  });
}

// ---- precision fp16 ------------------------------------------------------------------------------

// The parameters in halves for the fp16 table (after pack() checked sizes and the index).
void DenseBlock::pack_f16(const DenseBlockParams& p, DenseBlockPacked& out) const {
  const F16Kernels& hk = *f16_;
  out.f16 = f16_;
  const int L = layers();
  const std::size_t n_kept = out.off_kept[L], n_w1 = out.off_w1[L], n_w3 = out.off_w3[L];
  out.h_scale.reserve_zero(n_kept);
  out.h_shift.reserve_zero(n_kept);
  hk.f32_to_f16(p.scale, out.h_scale.data(), n_kept);
  hk.f32_to_f16(p.shift, out.h_shift.data(), n_kept);
  // b1 comes in shuffled order (channel m*G1 + j); the 1x1 adds it by pre-shuffle row j*mo + m
  std::vector<float> b1(static_cast<std::size_t>(L * mid_));
  for (int l = 0; l < L; ++l)
    for (int64_t j = 0; j < g1_; ++j)
      for (int64_t m = 0; m < mid_ / g1_; ++m) b1[l * mid_ + j * (mid_ / g1_) + m] = p.b1[l * mid_ + m * g1_ + j];
  out.h_b1.reserve_zero(b1.size());
  hk.f32_to_f16(b1.data(), out.h_b1.data(), b1.size());
  const int64_t mo = mid_ / g1_, M3 = growth_ / g3_, K3 = mid_ / g3_;
  const int fused = plan::fuse_gather(hk, mo);
  out.h_w1.reserve_zero(n_w1 + kF16WeightSlack);
  for (int l = 0; l < L; ++l) {
    const int64_t K = kept_[l] / g1_;
    for (int64_t j = 0; j < g1_; ++j)
      hk.pack_conv1x1(p.w1 + out.off_w1[l] + j * mo * K, static_cast<int>(mo), static_cast<int>(K), fused,
                      out.h_w1.data() + out.off_w1[l] + j * mo * K);
  }
  out.h_w3.reserve_zero(n_w3 + kF16WeightSlack);
  for (int l = 0; l < L; ++l)
    for (int64_t g = 0; g < g3_; ++g)
      hk.pack_conv3x3(p.w3 + out.off_w3[l] + g * M3 * K3 * 9, static_cast<int>(M3), static_cast<int>(K3),
                      out.h_w3.data() + out.off_w3[l] + g * M3 * K3 * 9);
  // Channel-vectorised layouts (same offsets), where a group's outputs fill whole vectors.
  if (mo % hk.vl == 0) {
    out.h_w1cv.reserve_zero(n_w1 + kF16WeightSlack);
    for (int l = 0; l < L; ++l) {
      const int64_t K = kept_[l] / g1_;
      for (int64_t j = 0; j < g1_; ++j)
        hk.pack_cv(p.w1 + out.off_w1[l] + j * mo * K, static_cast<int>(mo), static_cast<int>(K), 1,
                   out.h_w1cv.data() + out.off_w1[l] + j * mo * K);
    }
  }
  if (M3 % hk.vl == 0) {
    out.h_w3cv.reserve_zero(n_w3 + kF16WeightSlack);
    for (int l = 0; l < L; ++l)
      for (int64_t g = 0; g < g3_; ++g)
        hk.pack_cv(p.w3 + out.off_w3[l] + g * M3 * K3 * 9, static_cast<int>(M3), static_cast<int>(K3), 9,
                   out.h_w3cv.data() + out.off_w3[l] + g * M3 * K3 * 9);
  }
}

// One image: X converted to halves once into the block buffer, every layer in fp16, the new
// channels converted back into Y at the end (the input channels are copied from X exactly).
void DenseBlock::run_f16(const DenseBlockPacked& p, const float* X, int64_t C0, int64_t H, int64_t W, float* Y,
                         const ParallelFor& par) const {
  need(p.f16 != nullptr, "parameters were not packed for precision fp16");
  const F16Kernels& hk = *p.f16;
  const int L = layers();
  const int64_t Ctot = C0 + L * growth_;
  WorkspaceLease<Workspace> lease(ws_);
  Workspace& ws = lease.get();
  prepare(ws, 1, Ctot, H, W);

  const Geometry g(static_cast<int>(H), static_cast<int>(W));
  const std::ptrdiff_t PS = g.stride, HW = H * W;
  half_t* block = ws.h_block.data();
  half_t* midb = ws.h_mid.data();
  const uint16_t* mask = ws.h_mask.data();
  par(static_cast<std::size_t>(C0), [&](std::size_t c) {
    for (int r = 0; r < g.H; ++r)
      hk.f32_to_f16(X + c * HW + r * W, block + c * PS + g.origin + (r + 1) * g.Wp + 1, static_cast<std::size_t>(W));
  });

  const int64_t mo = mid_ / g1_, M3 = growth_ / g3_, K3 = mid_ / g3_;
  const bool fused = plan::fuse_gather(hk, mo);
  // Small images: outputs along the lanes (position vectors would be mostly padding there).
  const bool use_cv1 = plan::use_f16_chanvec_1x1(hk, mo, W), use_cv3 = plan::use_f16_chanvec_3x3(hk, M3, W);
  for (int l = 0; l < L; ++l) {
    const int64_t Cl = C0 + l * growth_;
    const int64_t K = kept_[l] / g1_;
    const LayerBuffers<half_t> lb{g, block, midb, mask, g1_, Cl, mo, M3, K3};
    const LayerParams<half_t> lp(p, l, mid_, p.h_scale.data(), p.h_shift.data(), p.h_w1.data(), p.h_b1.data(),
                                 p.h_w3.data());
    const half_t* w3cv = use_cv3 ? p.h_w3cv.data() + p.off_w3[l] : nullptr;

    // BN+ReLU of group j's picked channels (not folded: fp16 sums of folded biases would lose
    // accuracy), grouped 1x1, bias, ReLU -> mid (shuffled), [q0, q0+nq).
    auto step_1x1 = [&](int64_t j, std::ptrdiff_t q0, int nq) {
      const int Kg = static_cast<int>(K);  // inputs the 1x1 reads: every kept one
      const half_t* const* ptrs = lb.picked(lp.idx + j * K, Kg, K, q0);
      auto gathered = [&]() {  // BN + ReLU once into a thread-local scratch of nq positions each
        F16GatherArgs ga = lb.gather_args(ptrs, lp.sc + j * K, lp.sh + j * K, Kg, K, nq);
        hk.bnrelu_gather(ga);
        return ga.out;
      };
      if (use_cv1) {
        hk.conv1x1_cv(lb.cv1_args(j, gathered(), nq, Kg, p.h_w1cv.data() + p.off_w1[l] + j * K * mo, lp.b1 + j * mo));
        return;
      }
      F16ConvArgs ca = lb.conv1_args(j, q0, nq, Kg, lp.w1 + j * K * mo, lp.b1 + j * mo);
      if (fused) {
        ca.in_ptrs = ptrs;
        ca.bn_scale = lp.sc + j * K;
        ca.bn_shift = lp.sh + j * K;
      } else {
        ca.in = gathered();
        ca.in_stride = nq;
      }
      hk.conv1x1(ca);
    };
    par_group_chunks(par, g1_, 0, g.Qr, use_cv1 ? static_cast<int>(g.Qr) : plan::chunk(g.Qr, K, 1), step_1x1);
    par_group_chunks(par, g3_, 0, g.Qr, use_cv3 ? static_cast<int>(g.Qr) : plan::chunk(g.Qr, K3, 9),
                     [&](int64_t gg, std::ptrdiff_t q0, int nq) {
                       lb.step_3x3(hk, &hk, use_cv3, lp.w3, w3cv, gg, q0, nq);
                     });
  }

  par(static_cast<std::size_t>(Ctot), [&](std::size_t c) {
    float* dst = Y + c * HW;
    if (static_cast<int64_t>(c) < C0) {
      std::memcpy(dst, X + c * HW, sizeof(float) * HW);
      return;
    }
    for (int r = 0; r < g.H; ++r)
      hk.f16_to_f32(block + c * PS + g.origin + (r + 1) * g.Wp + 1, dst + r * W, static_cast<std::size_t>(W));
  });
}

}  // namespace cdops
