// Host-side launchers of the kernels shared by the streaming and offline CUDA paths
// (kernels stay private to kernels.cu, so no relocatable device code is needed).
#pragma once

#include <cuComplex.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace streambin {
namespace cuda {

// out[b, t, i] = x[b*x_stride + start + t*hop + i] * w[i] for i < valid, 0 for valid <= i < n_fft.
void launch_frame_and_window(const float* x, int64_t x_stride, int64_t start, int hop, const float* w,
                             int n_fft, int valid, int64_t frames, int64_t batch, float* out,
                             cudaStream_t stream);

// Complex-mask multiply (semantics of streambin::apply_mask); side != 0 writes both ears.
void launch_mask_multiply(const cuFloatComplex* spec, int64_t k, int64_t n_bins, const float* mask,
                          int64_t n_masks, int64_t sc, int64_t sp, int64_t sf, int64_t st, int side,
                          cuFloatComplex* out, cudaStream_t stream);

// Streaming overlap-add of k new windowed frames (channels, k, n_fft) against the carried
// accumulator acc_in (channels, n_fft; positions relative to the first new frame):
//   out (channels, k*hop): finished samples, divided by inv_env (hop) -> multiplied;
//   acc_out (channels, n_fft): what carries to the next push.
void launch_overlap_add(const float* frames, int64_t k, int channels, int n_fft, int hop, int offset,
                        const float* inv_env, const float* acc_in, float* acc_out, float* out,
                        cudaStream_t stream);

// Offline overlap-add: y[b, n] = sum_t frames[b, t, n - t*hop] / env[n] (0 where env < 1e-11);
// frames are already windowed and scaled.
void launch_offline_overlap_add(const float* frames, int64_t batch, int64_t n_frames, int n_fft, int hop,
                                const float* env, int64_t length, float* y, cudaStream_t stream);

// x[i] *= w[i % n] (windowing after an inverse FFT, with the 1/n_fft scale folded in w).
void launch_scale_by_window(float* x, int64_t total, const float* w, int n, cudaStream_t stream);

}  // namespace cuda
}  // namespace streambin
