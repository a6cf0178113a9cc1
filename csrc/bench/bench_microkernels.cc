// Micro-kernel throughput on the CondenseNet-74 shapes (G MAC/s per ISA), for tuning:
//   bench_microkernels [isa]   (CMake target bench_microkernels)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "ukernels/config.h"

using namespace cdops;

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds per call of run(): the best of 15 timings of `reps` calls each.
template <class Run>
static double best_seconds(int reps, Run run) {
  double best = 1e9;
  for (int t = 0; t < 15; ++t) {
    const double t0 = now();
    for (int r = 0; r < reps; ++r) run();
    best = std::min(best, (now() - t0) / reps);
  }
  return best;
}

int main(int argc, char** argv) {
  const MicroKernels* avail[9];
  int n = available_kernels(avail, 8);
  if (const MicroKernels* half = half_kernels(*avail[n - 1])) avail[n++] = half;  // e.g. avx512y
  struct Shape {
    const char* name;
    int taps, K, M, nq, row;
  } shapes[] = {
      {"b1 1x1 K5 M4 112", 1, 5, 4, 1024, 114},  {"b1 3x3 K4 M1 112", 9, 4, 1, 2736, 114},
      {"b2 1x1 K16 M8 56", 1, 16, 8, 1024, 58},  {"b2 3x3 K8 M2 56", 9, 8, 2, 1392, 58},
      {"b3 1x1 K46 M16 28", 1, 46, 16, 256, 30}, {"b3 3x3 K16 M4 28", 9, 16, 4, 448, 30},
      {"b4 1x1 K122 M32 14", 1, 122, 32, 64, 16}, {"b4 3x3 K32 M8 14", 9, 32, 8, 224, 16},
      {"b5 1x1 K242 M64 7", 1, 242, 64, 64, 9},  {"b5 3x3 K64 M16 7", 9, 64, 16, 64, 9},
      {"g4 b1 1x1 K8 M8 112", 1, 8, 8, 1024, 114},  {"g4 b1 3x3 K8 M2 112", 9, 8, 2, 2736, 114},
      {"g4 b2 1x1 K24 M16 56", 1, 24, 16, 1024, 58}, {"g4 b2 3x3 K16 M4 56", 9, 16, 4, 1392, 58},
      {"g4 b3 1x1 K64 M32 28", 1, 64, 32, 112, 30}, {"g4 b3 3x3 K32 M8 28", 9, 32, 8, 256, 30},
      {"g4 b4 1x1 K180 M64 14", 1, 180, 64, 64, 16},
  };
  for (int i = 0; i < n; ++i) {
    const MicroKernels& mk = *avail[i];
    if (argc > 1 && std::strcmp(argv[1], mk.name) != 0) continue;
    for (const Shape& s : shapes) {
      const int margin = s.row + 32, stride = s.nq + 2 * margin;
      std::vector<float> in(static_cast<size_t>(s.K) * stride, 0.5f), w(static_cast<size_t>(s.K) * s.taps * s.M, 0.01f),
          out(static_cast<size_t>(s.M) * s.nq + 64), bias(s.M, 0.1f);
      ConvArgs a;
      a.in = in.data() + margin;
      a.in_stride = stride;
      a.K = s.K;
      std::vector<float> packed(w.size());
      pack_weights(mk, w.data(), s.M, s.K, s.taps, 0, packed.data());
      a.w = packed.data();
      a.bias = bias.data();
      a.M = s.M;
      a.out = out.data();
      a.out_stride = s.nq;
      a.nq = s.nq;
      a.relu = 1;
      a.row = s.row;
      const double macs = double(s.K) * s.taps * s.M * s.nq;
      int reps = static_cast<int>(5e7 / macs) + 1;
      double best = best_seconds(reps, [&] { (s.taps == 1 ? mk.conv1x1 : mk.conv3x3)(a); });
      std::printf("%-7s %-22s %6.1f G MAC/s\n", mk.name, s.name, macs / best / 1e9);
      if (s.taps == 9 && s.M <= 4) {  // the same 3x3 in row bands
        a.nq = (s.nq / s.row) * s.row;
        best = best_seconds(reps, [&] { mk.conv3x3_rows(a); });
        std::printf("%-7s %-22s %6.1f G MAC/s (row bands)\n", mk.name, s.name, double(s.K) * 9 * s.M * a.nq / best / 1e9);
        a.nq = s.nq;
      }
      if (s.taps == 1 && s.M <= mk.mrf_max) {  // the same 1x1 with the gather fused
        std::vector<const float*> ptrs(s.K);
        std::vector<float> th(s.K, -0.1f);  // BN + ReLU folded: a quarter of the inputs clamp with min
        for (int k = 0; k < s.K; ++k) ptrs[k] = a.in + k * a.in_stride;
        pack_weights(mk, w.data(), s.M, s.K, s.taps, 1, packed.data());
        a.in_ptrs = ptrs.data();
        a.bn_thresh = th.data();
        a.n_max = s.K - s.K / 4;
        best = best_seconds(reps, [&] { mk.conv1x1(a); });
        std::printf("%-7s %-22s %6.1f G MAC/s (fused gather)\n", mk.name, s.name, macs / best / 1e9);
      }
    }
  }
  // channel-vectorised kernels: useful MACs (pixels only)
  struct CvShape {
    const char* name;
    int taps, K, M, H;
  } cvs[] = {{"b4 1x1 K122 M32 14", 1, 122, 32, 14}, {"b5 1x1 K242 M64 7", 1, 242, 64, 7},
             {"b5 3x3 K64 M16 7", 9, 64, 16, 7},    {"g4 b5 3x3 K128 M32 7", 9, 128, 32, 7},
             {"g4 b4 3x3 K64 M16 14", 9, 64, 16, 14}, {"b3 1x1 K46 M16 28", 1, 46, 16, 28},
             {"g4 b4 1x1 K180 M64 14", 1, 180, 64, 14}, {"g4 b5 1x1 K372 M128 7", 1, 372, 128, 7},
             {"g4 b3 1x1 K64 M32 28", 1, 64, 32, 28},   {"g4 b3 3x3 K32 M8 28", 9, 32, 8, 28},
             {"g4 b2 3x3 K16 M4 56", 9, 16, 4, 56}, {"b4 3x3 K32 M8 14", 9, 32, 8, 14}};
  for (int i = 0; i < n; ++i) {
    const MicroKernels& mk = *avail[i];
    if (argc > 1 && std::strcmp(argv[1], mk.name) != 0) continue;
    for (const CvShape& s : cvs) {
      if (s.M % mk.vl) continue;
      const int row = s.H + 2, plane = row * (s.H + 2) + 16;
      std::vector<float> in(static_cast<size_t>(s.K) * plane, 0.5f), w(static_cast<size_t>(s.K) * s.taps * s.M, 0.01f),
          out(static_cast<size_t>(s.M) * plane), bias(s.M, 0.1f), packed(w.size());
      mk.pack_cv(w.data(), s.M, s.K, s.taps, packed.data());
      CvArgs a;
      a.in = in.data() + row + 1;
      a.in_stride = plane;
      a.K = s.K;
      a.w = packed.data();
      a.bias = bias.data();
      a.M = s.M;
      a.out = out.data() + row + 1;
      a.out_stride = plane;
      a.H = a.W = s.H;
      a.row = row;
      a.relu = 1;
      const double macs = double(s.K) * s.taps * s.M * s.H * s.H;
      int reps = static_cast<int>(5e7 / macs) + 1;
      double best = best_seconds(reps, [&] { (s.taps == 1 ? mk.conv1x1_cv : mk.conv3x3_cv)(a); });
      std::printf("%-7s cv %-22s %6.1f G MAC/s (useful)\n", mk.name, s.name, macs / best / 1e9);
    }
  }
  return 0;
}
