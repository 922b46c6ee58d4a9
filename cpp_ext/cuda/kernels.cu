// Kernels of the CUDA DSP path and their launchers.
#include <algorithm>

#include "common.cuh"
#include "kernels.cuh"

namespace streambin {
namespace cuda {
namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535));
}

__global__ void frame_and_window(const float* __restrict__ x, int64_t x_stride, int64_t start, int hop,
                                 const float* __restrict__ w, int n_fft, int valid, int64_t frames,
                                 float* __restrict__ out) {
  const int64_t b = blockIdx.y;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < frames * n_fft;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = idx / n_fft;
    const int i = int(idx % n_fft);
    out[b * frames * n_fft + idx] = i < valid ? x[b * x_stride + start + t * hop + i] * w[i] : 0.0f;
  }
}

__global__ void mask_multiply(const cuFloatComplex* __restrict__ spec, int64_t k, int64_t n_bins,
                              const float* __restrict__ mask, int64_t n_masks, int64_t sc, int64_t sp,
                              int64_t sf, int64_t st, int side, cuFloatComplex* out) {
  const int64_t plane = k * n_bins;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < plane;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = idx / n_bins, f = idx % n_bins;
    const cuFloatComplex m = spec[idx];
    if (side) {
      const float* mp = mask + f * sf + t * st;
      const cuFloatComplex d = cuCmulf(m, make_cuFloatComplex(mp[0], mp[sp]));
      out[idx] = cuCaddf(m, d);  // both ears in one launch: L = M + D, R = M - D
      out[plane + idx] = cuCsubf(m, d);
    } else {
      // Masks innermost so out may alias spec when n_masks == 1 (in place).
      for (int64_t c = 0; c < n_masks; ++c) {
        const float* mp = mask + c * sc + f * sf + t * st;
        out[c * plane + idx] = cuCmulf(m, make_cuFloatComplex(mp[0], mp[sp]));
      }
    }
  }
}

// One thread per output sample (c, t, j) and per carried accumulator slot (c, i).
__global__ void overlap_add(const float* __restrict__ frames, int64_t k, int channels, int n_fft, int hop,
                            int offset, const float* __restrict__ inv_env, const float* __restrict__ acc_in,
                            float* __restrict__ acc_out, float* __restrict__ out) {
  const int64_t n_out = k * hop;
  const int64_t total = channels * (n_out + n_fft);
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(idx / (n_out + n_fft));
    const int64_t r = idx % (n_out + n_fft);
    const float* fc = frames + int64_t(c) * k * n_fft;
    // Absolute position p, counted from the first new frame's start.
    const int64_t p = r < n_out ? (r / hop) * hop + offset + (r % hop) : k * hop + (r - n_out);
    float sum = p < n_fft ? acc_in[int64_t(c) * n_fft + p] : 0.0f;
    // Frames t with t*hop <= p < t*hop + n_fft contribute.
    int64_t t_lo = p >= n_fft ? (p - n_fft) / hop + 1 : 0;
    const int64_t t_hi = (p / hop) < (k - 1) ? (p / hop) : (k - 1);
    for (int64_t t = t_lo; t <= t_hi; ++t) sum += fc[t * n_fft + (p - t * hop)];
    if (r < n_out) {
      out[int64_t(c) * n_out + r] = sum * inv_env[r % hop];
    } else {
      acc_out[int64_t(c) * n_fft + (r - n_out)] = sum;
    }
  }
}

__global__ void offline_overlap_add(const float* __restrict__ frames, int64_t batch, int64_t n_frames,
                                    int n_fft, int hop, const float* __restrict__ env, int64_t length,
                                    float* __restrict__ y) {
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < batch * length;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = idx / length, n = idx % length;
    int64_t t_lo = n >= n_fft ? (n - n_fft) / hop + 1 : 0;
    const int64_t t_hi = (n / hop) < (n_frames - 1) ? (n / hop) : (n_frames - 1);
    float sum = 0.0f;
    for (int64_t t = t_lo; t <= t_hi; ++t) sum += frames[(b * n_frames + t) * n_fft + (n - t * hop)];
    y[idx] = env[n] > 1e-11f ? sum / env[n] : 0.0f;
  }
}

__global__ void scale_by_window(float* x, int64_t total, const float* __restrict__ w, int n) {
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x)
    x[idx] *= w[idx % n];
}

}  // namespace

void launch_frame_and_window(const float* x, int64_t x_stride, int64_t start, int hop, const float* w,
                             int n_fft, int valid, int64_t frames, int64_t batch, float* out,
                             cudaStream_t stream) {
  if (frames <= 0 || batch <= 0) return;
  dim3 grid(blocks_for(frames * n_fft), static_cast<unsigned>(batch));
  frame_and_window<<<grid, kThreads, 0, stream>>>(x, x_stride, start, hop, w, n_fft, valid, frames, out);
  check(cudaGetLastError(), "frame_and_window launch");
}

void launch_mask_multiply(const cuFloatComplex* spec, int64_t k, int64_t n_bins, const float* mask,
                          int64_t n_masks, int64_t sc, int64_t sp, int64_t sf, int64_t st, int side,
                          cuFloatComplex* out, cudaStream_t stream) {
  if (k <= 0) return;
  mask_multiply<<<blocks_for(k * n_bins), kThreads, 0, stream>>>(spec, k, n_bins, mask, n_masks, sc, sp, sf,
                                                                 st, side, out);
  check(cudaGetLastError(), "mask_multiply launch");
}

void launch_overlap_add(const float* frames, int64_t k, int channels, int n_fft, int hop, int offset,
                        const float* inv_env, const float* acc_in, float* acc_out, float* out,
                        cudaStream_t stream) {
  const int64_t total = channels * (k * hop + n_fft);
  overlap_add<<<blocks_for(total), kThreads, 0, stream>>>(frames, k, channels, n_fft, hop, offset, inv_env,
                                                          acc_in, acc_out, out);
  check(cudaGetLastError(), "overlap_add launch");
}

void launch_offline_overlap_add(const float* frames, int64_t batch, int64_t n_frames, int n_fft, int hop,
                                const float* env, int64_t length, float* y, cudaStream_t stream) {
  if (batch * length <= 0) return;
  offline_overlap_add<<<blocks_for(batch * length), kThreads, 0, stream>>>(frames, batch, n_frames, n_fft,
                                                                           hop, env, length, y);
  check(cudaGetLastError(), "offline_overlap_add launch");
}

void launch_scale_by_window(float* x, int64_t total, const float* w, int n, cudaStream_t stream) {
  if (total <= 0) return;
  scale_by_window<<<blocks_for(total), kThreads, 0, stream>>>(x, total, w, n);
  check(cudaGetLastError(), "scale_by_window launch");
}

}  // namespace cuda
}  // namespace streambin
