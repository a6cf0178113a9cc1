// Shared helpers of the operator logic (no onnxruntime types and no ISA here): the error type,
// argument checks, the ParallelFor callback, aligned buffers, the cached workspace, the padded plane
// geometry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>

namespace cdops {

// A contract violation by the model or its inputs: the binding turns it into ORT_INVALID_ARGUMENT.
struct InvalidArgument : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::string str(int64_t v) { return std::to_string(v); }

// An operator's argument check: `constexpr Need need{"DenseBlock"};` then need(ok, message) throws
// InvalidArgument("DenseBlock: message") unless ok.
struct Need {
  const char* op;
  void operator()(bool ok, const std::string& msg) const {
    if (!ok) throw InvalidArgument(std::string(op) + ": " + msg);
  }
};

// Runs fn(i) for i in [0, n), possibly in parallel; each i exactly once. Provided by the binding.
using ParallelFor = std::function<void(std::size_t n, const std::function<void(std::size_t)>& fn)>;

// A 64-byte aligned, zero-initialised float/uint32 buffer.
template <typename T>
class AlignedBuf {
 public:
  AlignedBuf() = default;
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
  ~AlignedBuf() { std::free(p_); }
  // Grows (never shrinks) to at least n elements; contents are zero after a reallocation.
  // Returns true if it reallocated.
  bool reserve_zero(std::size_t n) {
    if (n <= n_ && p_) return false;
    std::free(p_);
    p_ = nullptr;
    n_ = 0;
    const std::size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
    p_ = static_cast<T*>(std::aligned_alloc(64, bytes ? bytes : 64));
    if (!p_) throw std::bad_alloc();
    std::memset(p_, 0, bytes);
    n_ = n;
    return true;
  }
  void zero() {
    if (p_) std::memset(p_, 0, n_ * sizeof(T));
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  std::size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

// An operator's workspace, cached between runs. Concurrent runs of one kernel never wait for each
// other: a run that finds the cached one busy works in a fresh one of its own (WorkspaceLease).
template <typename W>
struct CachedWorkspace {
  std::mutex mu;
  W ws;
};

template <typename W>
class WorkspaceLease {
 public:
  explicit WorkspaceLease(CachedWorkspace<W>& c) : lock_(c.mu, std::try_to_lock), ws_(lock_.owns_lock() ? c.ws : local_) {}
  W& get() { return ws_; }

 private:
  std::unique_lock<std::mutex> lock_;
  W local_;
  W& ws_;
};

inline std::size_t round_up(std::size_t x, std::size_t m) { return (x + m - 1) / m * m; }

// The padded planar layout: a channel is a plane of (H+2) x (W+2) floats (one zero row/column
// around the image), flattened, starting `origin` floats into a run of `stride` floats. Kernels
// compute positions q in [Wp, Wp + Qr): rows 1..H, all Wp columns, rounded up to 16 positions;
// the pad columns and the round-up tail are garbage that the mask zeroes.
struct Geometry {
  int H = 0, W = 0;
  std::ptrdiff_t Wp = 0;      // W + 2
  std::ptrdiff_t Q = 0;       // H * Wp
  std::ptrdiff_t Qr = 0;      // Q rounded up to 16
  std::ptrdiff_t origin = 0;  // offset of padded (0, 0) in a plane
  std::ptrdiff_t stride = 0;  // floats per plane

  Geometry() = default;
  Geometry(int h, int w) : H(h), W(w) {
    Wp = w + 2;
    Q = static_cast<std::ptrdiff_t>(h) * Wp;
    Qr = static_cast<std::ptrdiff_t>(round_up(static_cast<std::size_t>(Q), 16));
    origin = 16;
    // 3x3 reads reach q - Wp - 1 >= -1 and q + Wp + 1 <= 2 Wp + Qr; the row-band 3x3 may run 16
    // positions further.
    stride = static_cast<std::ptrdiff_t>(round_up(static_cast<std::size_t>(origin + 2 * Wp + Qr + 1 + 16), 16));
  }
  // mask[i] for q = Wp + i, i < Qr + 16: all ones on image pixels, 0 on pad columns and the tail.
  std::ptrdiff_t mask_size() const { return Qr + 16; }
  void fill_mask(uint32_t* mask) const {
    for (std::ptrdiff_t i = 0; i < mask_size(); ++i) {
      const std::ptrdiff_t q = Wp + i, r = q / Wp, c = q % Wp;
      mask[i] = (r <= H && c >= 1 && c <= W) ? 0xFFFFFFFFu : 0u;
    }
  }
  // Copies a [H, W] image into a plane's interior; pads are left as they are (zero).
  void copy_in(const float* src, float* plane) const {
    for (int r = 0; r < H; ++r)
      std::memcpy(plane + origin + (r + 1) * Wp + 1, src + static_cast<std::ptrdiff_t>(r) * W, sizeof(float) * W);
  }
  void copy_out(const float* plane, float* dst) const {
    for (int r = 0; r < H; ++r)
      std::memcpy(dst + static_cast<std::ptrdiff_t>(r) * W, plane + origin + (r + 1) * Wp + 1, sizeof(float) * W);
  }
};

}  // namespace cdops
