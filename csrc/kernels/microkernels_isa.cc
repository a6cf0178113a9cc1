// The micro-kernels, written once with GCC vector extensions and compiled once per ISA by
// scripts/build-kernels.sh (CD_ISA_NAME = scalar | sse | avx2 | avx512 | neon, with that ISA's
// -m flags). The vector length and the register budget follow from the ISA; the register tile
// is [MR outputs x NR vectors of positions], accumulators held in registers over the whole
// reduction (K input channels x taps), weights broadcast from the packed [k][tap][m] layout.
#include <cstring>

#include "kernels/microkernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#ifndef CD_ISA_NAME
#error "CD_ISA_NAME must be defined (scalar, sse, avx2, avx512, neon)"
#endif

namespace cdops {
namespace {

#define CD_ISA_scalar 1
#define CD_ISA_sse 2
#define CD_ISA_avx2 3
#define CD_ISA_avx512 4
#define CD_ISA_neon 5
#define CD_ISA_avx512y 6
#define CD_CAT2(a, b) a##b
#define CD_CAT(a, b) CD_CAT2(a, b)
#define CD_ISA CD_CAT(CD_ISA_, CD_ISA_NAME)

#if CD_ISA == CD_ISA_avx512
constexpr int VL = 16, REGS = 32, MR_MAX = 6, MRF_MAX = 16;
#elif CD_ISA == CD_ISA_avx512y  // AVX-512VL at 256 bits: 32 registers of 8 floats
constexpr int VL = 8, REGS = 32, MR_MAX = 6, MRF_MAX = 16;
#elif CD_ISA == CD_ISA_avx2
constexpr int VL = 8, REGS = 16, MR_MAX = 4, MRF_MAX = 8;
#elif CD_ISA == CD_ISA_sse
constexpr int VL = 4, REGS = 16, MR_MAX = 4, MRF_MAX = 8;
#elif CD_ISA == CD_ISA_neon
constexpr int VL = 4, REGS = 32, MR_MAX = 6, MRF_MAX = 16;
#elif CD_ISA == CD_ISA_scalar
constexpr int VL = 1, REGS = 16, MR_MAX = 4, MRF_MAX = 8;
#else
#error "unknown CD_ISA_NAME"
#endif

#if CD_ISA == CD_ISA_scalar
typedef float V;
typedef uint32_t VU;
inline V splat(float s) { return s; }
inline V zero() { return 0.0f; }
inline V loadu(const float* p) { return *p; }
inline void storeu(float* p, V v) { *p = v; }
inline VU loadmask(const uint32_t* p) { return *p; }
inline V relu(V v) { return v > 0.0f ? v : 0.0f; }
inline V andmask(V v, VU m) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  b &= m;
  std::memcpy(&v, &b, 4);
  return v;
}
inline V fma_(V a, V b, V c) { return a * b + c; }
#else
typedef float V __attribute__((vector_size(VL * 4)));
typedef uint32_t VU __attribute__((vector_size(VL * 4)));
// Broadcast through the ISA's own intrinsic, so that it folds into the FMA as a memory broadcast.
#if CD_ISA == CD_ISA_avx512
inline V splat(float s) { return (V)_mm512_set1_ps(s); }
#elif CD_ISA == CD_ISA_avx2 || CD_ISA == CD_ISA_avx512y
inline V splat(float s) { return (V)_mm256_set1_ps(s); }
#elif CD_ISA == CD_ISA_sse
inline V splat(float s) { return (V)_mm_set1_ps(s); }
#else
inline V splat(float s) { return (V)vdupq_n_f32(s); }
#endif
inline V zero() { return V{}; }
inline V loadu(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
inline void storeu(float* p, V v) { std::memcpy(p, &v, sizeof(V)); }
inline VU loadmask(const uint32_t* p) {
  VU v;
  std::memcpy(&v, p, sizeof(VU));
  return v;
}
inline V relu(V v) { return v > zero() ? v : zero(); }
inline V andmask(V v, VU m) { return (V)((VU)v & m); }
inline V fma_(V a, V b, V c) { return a * b + c; }  // contracted to FMA where the ISA has it
#endif

// Position vectors per tile for MR outputs: MR*NR accumulators + NR inputs + 1 broadcast.
constexpr int nr_for(int mr) {
  int n = (REGS - 1) / (mr + 1);
  return n < 1 ? 1 : (n > 10 ? 10 : n);
}

// Weights of one output tile [m0, m0 + mr) are packed as [k][tap][mr] starting at w + m0*K*TAPS
// (see pack_weights), so every weight is a constant displacement from one pointer.
// Outputs per register tile for M outputs: the largest divisor of M in [3, MR_MAX] (equal tiles),
// else MR_MAX (the last tile smaller); M itself when it fits.
// With the gather fused (1x1 with BN on its loads), a group of up to MRF_MAX outputs is one tall
// tile (few position vectors), so each picked channel goes through BN + ReLU once.
inline int mr_for(int M, bool fused = false) {
  if (M <= MR_MAX || (fused && M <= MRF_MAX)) return M;
  for (int d = MR_MAX; d >= 3; --d)
    if (M % d == 0) return d;
  return MR_MAX;
}

template <int MR, int NR, int TAPS, bool BN>
inline void conv_tile(const ConvArgs& a, int m0, int i0) {
  V acc[MR][NR];
  for (int i = 0; i < MR; ++i) {
    const V b = a.bias ? splat(a.bias[m0 + i]) : zero();
    for (int j = 0; j < NR; ++j) acc[i][j] = b;
  }
  const float* inp = a.in + i0;
  const float* w = a.w + static_cast<std::ptrdiff_t>(m0) * a.K * TAPS;
  const std::ptrdiff_t row = a.row;
  for (int k = 0; k < a.K; ++k, inp += a.in_stride, w += TAPS * MR) {
    if constexpr (BN) {
      // 1x1 on picked channels with BN + ReLU applied on the fly
      const float* src = a.in_ptrs[k] + i0;
      const V sc = splat(a.bn_scale[k]), sh = splat(a.bn_shift[k]);
      V x[NR];
      for (int j = 0; j < NR; ++j) x[j] = relu(fma_(loadu(src + j * VL), sc, sh));
      for (int i = 0; i < MR; ++i) {
        const V wv = splat(w[i]);
        for (int j = 0; j < NR; ++j) acc[i][j] = fma_(wv, x[j], acc[i][j]);
      }
    } else if constexpr (TAPS == 1) {
      V x[NR];
      for (int j = 0; j < NR; ++j) x[j] = loadu(inp + j * VL);
      for (int i = 0; i < MR; ++i) {
        const V wv = splat(w[i]);
        for (int j = 0; j < NR; ++j) acc[i][j] = fma_(wv, x[j], acc[i][j]);
      }
    } else {
      const float* rows[3] = {inp - row, inp, inp + row};
      for (int dy = 0; dy < 3; ++dy) {
        for (int dx = 0; dx < 3; ++dx) {
          V x[NR];
          for (int j = 0; j < NR; ++j) x[j] = loadu(rows[dy] + (dx - 1) + j * VL);
          for (int i = 0; i < MR; ++i) {
            const V wv = splat(w[(dy * 3 + dx) * MR + i]);
            for (int j = 0; j < NR; ++j) acc[i][j] = fma_(wv, x[j], acc[i][j]);
          }
        }
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* o = a.out + (m0 + i) * a.out_stride + i0;
    for (int j = 0; j < NR; ++j) {
      V v = acc[i][j];
      if (a.relu) v = relu(v);
      if (a.mask) v = andmask(v, loadmask(a.mask + i0 + j * VL));
      storeu(o + j * VL, v);
    }
  }
}

// Remainder of position vectors (fewer than a full NR tile): pick the template by count.
template <int MR, int R, int TAPS, bool BN>
inline void conv_tile_rem(const ConvArgs& a, int m0, int i0, int r) {
  if constexpr (R > 0) {
    if (r == R)
      conv_tile<MR, R, TAPS, BN>(a, m0, i0);
    else
      conv_tile_rem<MR, R - 1, TAPS, BN>(a, m0, i0, r);
  }
}

template <int MR, int TAPS, bool BN>
void conv_rows(const ConvArgs& a, int m0) {
  constexpr int NR = nr_for(MR);
  const int nv = a.nq / VL;
  int j = 0;
  for (; j + NR <= nv; j += NR) conv_tile<MR, NR, TAPS, BN>(a, m0, j * VL);
  if (j < nv) conv_tile_rem<MR, NR - 1, TAPS, BN>(a, m0, j * VL, nv - j);
}

// One output tile of r outputs (r <= MR_MAX): pick the template by count.
template <int R, int TAPS, bool BN>
inline void conv_rows_n(const ConvArgs& a, int m0, int r) {
  if constexpr (R > 0) {
    if (r == R)
      conv_rows<R, TAPS, BN>(a, m0);
    else
      conv_rows_n<R - 1, TAPS, BN>(a, m0, r);
  }
}

template <int TAPS, bool BN>
void conv(const ConvArgs& a) {
  constexpr int TOP = BN ? MRF_MAX : MR_MAX;
  const int mr = mr_for(a.M, BN);
  for (int m0 = 0; m0 < a.M; m0 += mr) conv_rows_n<TOP, TAPS, BN>(a, m0, a.M - m0 < mr ? a.M - m0 : mr);
}

void conv1x1(const ConvArgs& a) {
  if (a.in_ptrs)
    conv<1, true>(a);
  else
    conv<1, false>(a);
}
void conv3x3(const ConvArgs& a) { conv<9, false>(a); }

// ONNX order [M][K][taps] -> per output tile (mr_for(M) outputs, the last one maybe smaller):
// [k][tap][mr], tile m0 at dst + m0*K*taps.
void pack_weights(const float* src, int M, int K, int taps, int fused, float* dst) {
  const int step = mr_for(M, fused != 0);
  for (int m0 = 0; m0 < M; m0 += step) {
    const int mr = M - m0 < step ? M - m0 : step;
    float* d = dst + static_cast<std::ptrdiff_t>(m0) * K * taps;
    for (int k = 0; k < K; ++k)
      for (int t = 0; t < taps; ++t)
        for (int i = 0; i < mr; ++i) d[(k * taps + t) * mr + i] = src[(static_cast<std::ptrdiff_t>(m0 + i) * K + k) * taps + t];
  }
}


// ---- 3x3 with few outputs: row bands ---------------------------------------------------------
// For 1-4 outputs per group the position-vector 3x3 loads one input vector per FMA. Here a tile is
// R image rows x one position vector: each input row vector loaded for a (k, dx) serves up to 3
// output rows (dy = 0, 1, 2), so loads per FMA drop from 1 to about (R + 2) / (3 R M).
constexpr int vr_rows(int m) {
  int r = (REGS - 4) / (m + 1);  // R*m accumulators + R + 2 input rows + a broadcast
  return r < 1 ? 1 : (r > 12 ? 12 : r);
}

template <int MR, int R>
inline void vr_tile(const ConvArgs& a, int m0, std::ptrdiff_t p0) {
  V acc[MR][R];
  for (int i = 0; i < MR; ++i) {
    const V b = a.bias ? splat(a.bias[m0 + i]) : zero();
    for (int r = 0; r < R; ++r) acc[i][r] = b;
  }
  const float* w = a.w + static_cast<std::ptrdiff_t>(m0) * a.K * 9;
  const std::ptrdiff_t row = a.row;
  const float* inp = a.in + p0 - row;  // input row above the tile's first row
  for (int k = 0; k < a.K; ++k, inp += a.in_stride, w += 9 * MR) {
    for (int dx = 0; dx < 3; ++dx) {
      // all R + 2 input rows in registers, then dy-major FMAs: consecutive FMAs hit different
      // accumulators (no chain on one accumulator within the FMA latency)
      V x[R + 2];
      const float* src = inp + (dx - 1);
      for (int rr = 0; rr < R + 2; ++rr) x[rr] = loadu(src + rr * row);
      for (int dy = 0; dy < 3; ++dy)
        for (int i = 0; i < MR; ++i) {
          const V wv = splat(w[(dy * 3 + dx) * MR + i]);
          for (int r = 0; r < R; ++r) acc[i][r] = fma_(wv, x[r + dy], acc[i][r]);
        }
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* o = a.out + (m0 + i) * a.out_stride + p0;
    for (int r = 0; r < R; ++r) {
      V v = acc[i][r];
      if (a.relu) v = relu(v);
      if (a.mask) v = andmask(v, loadmask(a.mask + p0 + r * row));
      storeu(o + r * row, v);
    }
  }
}

template <int MR, int R>
inline void vr_tile_rem(const ConvArgs& a, int m0, std::ptrdiff_t p0, int r) {
  if constexpr (R > 0) {
    if (r == R)
      vr_tile<MR, R>(a, m0, p0);
    else
      vr_tile_rem<MR, R - 1>(a, m0, p0, r);
  }
}

template <int MR>
void vr_rows(const ConvArgs& a, int m0) {
  constexpr int R = vr_rows(MR);
  const int H = static_cast<int>(a.nq / a.row);
  const int ncv = static_cast<int>((a.row + VL - 1) / VL);
  for (int r0 = 0; r0 < H; r0 += R) {
    const int nr = H - r0 < R ? H - r0 : R;
    for (int cv = 0; cv < ncv; ++cv) {
      const std::ptrdiff_t p0 = r0 * a.row + cv * VL;
      if (nr == R)
        vr_tile<MR, R>(a, m0, p0);
      else
        vr_tile_rem<MR, R - 1>(a, m0, p0, nr);
    }
  }
}

// a.nq = H * row (whole rows); a.M <= 4; weights packed by pack_weights (taps 9, M <= MR_MAX: one
// tile). Writes may spill up to VL - 1 positions past the last row (into the bottom pad row).
void conv3x3_rows(const ConvArgs& a) {
  switch (a.M) {
    case 1: vr_rows<1>(a, 0); break;
    case 2: vr_rows<2>(a, 0); break;
    case 3: vr_rows<3>(a, 0); break;
    default: vr_rows<4>(a, 0); break;
  }
}

// ---- channel-vectorised kernels -------------------------------------------------------------
#if CD_ISA == CD_ISA_scalar
inline float lane(V v, int) { return v; }
#else
inline float lane(V v, int l) { return v[l]; }
#endif

constexpr int CV_MRV_MAX = VL == 1 ? 4 : (REGS >= 32 ? 3 : 2);  // output vectors per tile
constexpr int cv_nr_for(int mrv) {
  int n = (REGS - 1 - mrv) / mrv;
  return n < 1 ? 1 : (n > 14 ? 14 : n);
}
inline int cv_mrv_for(int Mv) {
  if (Mv <= CV_MRV_MAX) return Mv;
  for (int d = CV_MRV_MAX; d >= 2; --d)
    if (Mv % d == 0) return d;
  return CV_MRV_MAX;
}

// Weights of output-vector tile [mv0, mv0 + mrv) packed as [k][tap][mrv*VL] at w + mv0*VL*K*TAPS.
template <int MRV, int NR, int TAPS>
inline void cv_tile(const CvArgs& a, int mv0, std::ptrdiff_t p0) {
  V acc[MRV][NR];
  for (int v = 0; v < MRV; ++v) {
    const V b = a.bias ? loadu(a.bias + (mv0 + v) * VL) : zero();
    for (int j = 0; j < NR; ++j) acc[v][j] = b;
  }
  const float* w = a.w + static_cast<std::ptrdiff_t>(mv0) * VL * a.K * TAPS;
  const float* inp = a.in + p0;
  const std::ptrdiff_t row = a.row;
  for (int k = 0; k < a.K; ++k, inp += a.in_stride) {
    const float* rows[3] = {inp - row, inp, inp + row};
    for (int t = 0; t < TAPS; ++t, w += MRV * VL) {
      const float* x = TAPS == 1 ? inp : rows[t / 3] + (t % 3 - 1);
      V wv[MRV];
      for (int v = 0; v < MRV; ++v) wv[v] = loadu(w + v * VL);
      for (int j = 0; j < NR; ++j) {
        const V xb = splat(x[j]);
        for (int v = 0; v < MRV; ++v) acc[v][j] = fma_(wv[v], xb, acc[v][j]);
      }
    }
  }
  for (int v = 0; v < MRV; ++v) {
    float* o = a.out + static_cast<std::ptrdiff_t>(mv0 + v) * VL * a.out_stride + p0;
    for (int j = 0; j < NR; ++j) {
      V r = acc[v][j];
      if (a.relu) r = relu(r);
      for (int l = 0; l < VL; ++l) o[l * a.out_stride + j] = lane(r, l);
    }
  }
}

template <int MRV, int R, int TAPS>
inline void cv_tile_rem(const CvArgs& a, int mv0, std::ptrdiff_t p0, int r) {
  if constexpr (R > 0) {
    if (r == R)
      cv_tile<MRV, R, TAPS>(a, mv0, p0);
    else
      cv_tile_rem<MRV, R - 1, TAPS>(a, mv0, p0, r);
  }
}

template <int MRV, int TAPS>
void cv_rows(const CvArgs& a, int mv0) {
  constexpr int NR = cv_nr_for(MRV);
  for (int r = 0; r < a.H; ++r) {
    const std::ptrdiff_t base = r * a.row;
    int c = 0;
    for (; c + NR <= a.W; c += NR) cv_tile<MRV, NR, TAPS>(a, mv0, base + c);
    if (c < a.W) cv_tile_rem<MRV, NR - 1, TAPS>(a, mv0, base + c, a.W - c);
  }
}

template <int R, int TAPS>
inline void cv_rows_n(const CvArgs& a, int mv0, int r) {
  if constexpr (R > 0) {
    if (r == R)
      cv_rows<R, TAPS>(a, mv0);
    else
      cv_rows_n<R - 1, TAPS>(a, mv0, r);
  }
}

template <int TAPS>
void conv_cv(const CvArgs& a) {
  const int Mv = a.M / VL;
  const int step = cv_mrv_for(Mv);
  for (int mv0 = 0; mv0 < Mv; mv0 += step) cv_rows_n<CV_MRV_MAX, TAPS>(a, mv0, Mv - mv0 < step ? Mv - mv0 : step);
}

void conv1x1_cv(const CvArgs& a) { conv_cv<1>(a); }
void conv3x3_cv(const CvArgs& a) { conv_cv<9>(a); }

void pack_cv(const float* src, int M, int K, int taps, float* dst) {
  const int Mv = M / VL, step = cv_mrv_for(Mv);
  for (int mv0 = 0; mv0 < Mv; mv0 += step) {
    const int mrv = Mv - mv0 < step ? Mv - mv0 : step;
    float* d = dst + static_cast<std::ptrdiff_t>(mv0) * VL * K * taps;
    for (int k = 0; k < K; ++k)
      for (int t = 0; t < taps; ++t)
        for (int i = 0; i < mrv * VL; ++i)
          d[(k * taps + t) * mrv * VL + i] = src[(static_cast<std::ptrdiff_t>(mv0 * VL + i) * K + k) * taps + t];
  }
}

void bnrelu_gather(const GatherArgs& a) {
  for (int k = 0; k < a.K; ++k) {
    const float* src = a.in[k];
    float* dst = a.out + k * a.out_stride;
    const V s = splat(a.scale[k]), t = splat(a.shift[k]);
    for (int i = 0; i < a.nq; i += VL) storeu(dst + i, relu(fma_(loadu(src + i), s, t)));
  }
}

const MicroKernels table = {
#define CD_STR2(x) #x
#define CD_STR(x) CD_STR2(x)
    CD_STR(CD_ISA_NAME), VL, MR_MAX, MRF_MAX, conv1x1, conv3x3, bnrelu_gather, pack_weights,
    conv1x1_cv, conv3x3_cv, pack_cv, conv3x3_rows};

}  // namespace

const MicroKernels* CD_CAT(kernels_, CD_ISA_NAME)() { return &table; }

}  // namespace cdops
