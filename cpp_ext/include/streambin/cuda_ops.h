// CUDA implementations of streambin's DSP ops (cuFFT + kernels). Compiled only when the
// build finds nvcc and cuFFT (STREAMBIN_WITH_CUDA). This header has no CUDA types so the
// pybind11 bindings can include it from a plain C++ compiler: device pointers and CUDA
// streams travel as uintptr_t.
//
// Every class allocates its device buffers and cuFFT plans in its constructor (plans for
// a larger frame batch are made once, the first time that batch size is seen); the
// per-block methods only enqueue work on the given stream and never synchronise, except
// the *_host convenience methods, which copy through pinned staging buffers and wait.
#pragma once

#include <complex>
#include <cstdint>
#include <memory>

#include "streambin/stft_params.h"

namespace streambin {
namespace cuda {

using cfloat = std::complex<float>;

int device_count();               // 0 when no driver / no GPU (never throws)

class StreamingStftCuda {
 public:
  // max_chunk: largest number of samples one push may carry (device buffers are sized by it).
  StreamingStftCuda(const StftParams& p, int64_t max_chunk, int device = 0);
  ~StreamingStftCuda();
  int64_t frames_for(int64_t n) const;
  int n_bins() const;
  const StftParams& params() const;
  int64_t max_chunk() const;
  // x: n float32 on the device; out: frames_for(n) * n_bins complex on the device.
  int64_t push_device(uintptr_t x, int64_t n, uintptr_t out, uintptr_t stream);
  // Host convenience: copies in and out, synchronises.
  int64_t push_host(const float* x, int64_t n, cfloat* out);
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class StreamingIstftCuda {
 public:
  StreamingIstftCuda(const StftParams& p, int channels, int64_t max_frames, int device = 0);
  ~StreamingIstftCuda();
  const StftParams& params() const;
  int channels() const;
  int64_t max_frames() const;
  // frames: (channels, k, n_bins) complex on the device; out: (channels, k*hop) float32.
  void push_device(uintptr_t frames, int64_t k, uintptr_t out, uintptr_t stream);
  void push_host(const cfloat* frames, int64_t k, float* out);
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Mask multiply on device memory; same semantics and strides as streambin::apply_mask.
// mode: 0 direct, 1 side.
void apply_mask_device(uintptr_t spec, int64_t k, int64_t n_bins, uintptr_t mask, int64_t n_masks,
                       int64_t stride_c, int64_t stride_part, int64_t stride_f, int64_t stride_t,
                       int mode, uintptr_t out, uintptr_t stream);
// Host convenience for tests: host arrays in and out (contiguous mask (n_masks, 2, n_bins, k)).
void apply_mask_host(const cfloat* spec, int64_t k, int64_t n_bins, const float* mask, int64_t n_masks,
                     int mode, cfloat* out, int device = 0);

// Offline batched transforms, host arrays in and out (same semantics as the CPU versions).
void stft_frames_host(const StftParams& p, const float* x, int64_t batch, int64_t n, cfloat* out, int device = 0);
void istft_frames_host(const StftParams& p, const cfloat* spec, int64_t batch, int64_t frames, float* out,
                       int device = 0);

}  // namespace cuda
}  // namespace streambin
