// Complex-mask multiply and offline batched STFT/ISTFT on the GPU.
#include <cuComplex.h>
#include <vector>

#include "common.cuh"
#include "kernels.cuh"
#include "streambin/cuda_ops.h"

namespace streambin {
namespace cuda {

void apply_mask_device(uintptr_t spec, int64_t k, int64_t n_bins, uintptr_t mask, int64_t n_masks,
                       int64_t stride_c, int64_t stride_part, int64_t stride_f, int64_t stride_t, int mode,
                       uintptr_t out, uintptr_t stream) {
  if (mode == 1 && n_masks != 1) throw std::invalid_argument("apply_mask: side mode takes exactly 1 mask");
  launch_mask_multiply(reinterpret_cast<const cuFloatComplex*>(spec), k, n_bins, reinterpret_cast<const float*>(mask),
                       n_masks, stride_c, stride_part, stride_f, stride_t, mode,
                       reinterpret_cast<cuFloatComplex*>(out), as_stream(stream));
}

void apply_mask_host(const cfloat* spec, int64_t k, int64_t n_bins, const float* mask, int64_t n_masks, int mode,
                     cfloat* out, int device) {
  DeviceGuard guard(device);
  const int64_t n_out = mode == 1 ? 2 : n_masks;
  DeviceBuffer<cfloat> d_spec(std::max<int64_t>(1, k * n_bins)), d_out(std::max<int64_t>(1, n_out * k * n_bins));
  DeviceBuffer<float> d_mask(std::max<int64_t>(1, n_masks * 2 * n_bins * k));
  check(cudaMemcpy(d_spec.get(), spec, sizeof(cfloat) * k * n_bins, cudaMemcpyHostToDevice), "copy spec");
  check(cudaMemcpy(d_mask.get(), mask, sizeof(float) * n_masks * 2 * n_bins * k, cudaMemcpyHostToDevice), "copy mask");
  apply_mask_device(reinterpret_cast<uintptr_t>(d_spec.get()), k, n_bins, reinterpret_cast<uintptr_t>(d_mask.get()),
                    n_masks, 2 * n_bins * k, n_bins * k, k, 1, mode, reinterpret_cast<uintptr_t>(d_out.get()), 0);
  check(cudaMemcpy(out, d_out.get(), sizeof(cfloat) * n_out * k * n_bins, cudaMemcpyDeviceToHost), "copy out");
}

void stft_frames_host(const StftParams& p, const float* x, int64_t batch, int64_t n, cfloat* out, int device) {
  p.validate();
  DeviceGuard guard(device);
  const int64_t frames = 1 + (n - p.n_fft) / p.hop;
  const std::vector<float> w = padded_hann(p);
  DeviceBuffer<float> d_w(p.n_fft), d_x(batch * n), d_frames(batch * frames * p.n_fft);
  DeviceBuffer<cfloat> d_out(batch * frames * p.n_bins());
  check(cudaMemcpy(d_w.get(), w.data(), sizeof(float) * p.n_fft, cudaMemcpyHostToDevice), "copy window");
  check(cudaMemcpy(d_x.get(), x, sizeof(float) * batch * n, cudaMemcpyHostToDevice), "copy signal");
  launch_frame_and_window(d_x.get(), n, 0, p.hop, d_w.get(), p.n_fft, p.n_fft, frames, batch, d_frames.get(), 0);
  FftPlans plans(p.n_fft, CUFFT_R2C);
  check(cufftExecR2C(plans.get(static_cast<int>(batch * frames), 0), d_frames.get(),
                     reinterpret_cast<cufftComplex*>(d_out.get())), "cufftExecR2C");
  check(cudaMemcpy(out, d_out.get(), sizeof(cfloat) * batch * frames * p.n_bins(), cudaMemcpyDeviceToHost), "copy out");
}

void istft_frames_host(const StftParams& p, const cfloat* spec, int64_t batch, int64_t frames, float* out,
                       int device) {
  p.validate();
  DeviceGuard guard(device);
  const int64_t len = p.n_fft + (frames - 1) * p.hop;
  std::vector<float> w = padded_hann(p), env(len, 0.0f);
  for (int64_t t = 0; t < frames; ++t)
    for (int i = 0; i < p.n_fft; ++i) env[t * p.hop + i] += w[i] * w[i];
  for (float& v : w) v /= static_cast<float>(p.n_fft);
  DeviceBuffer<float> d_w(p.n_fft), d_env(len), d_frames(batch * frames * p.n_fft), d_y(batch * len);
  DeviceBuffer<cfloat> d_spec(batch * frames * p.n_bins());
  check(cudaMemcpy(d_w.get(), w.data(), sizeof(float) * p.n_fft, cudaMemcpyHostToDevice), "copy window");
  check(cudaMemcpy(d_env.get(), env.data(), sizeof(float) * len, cudaMemcpyHostToDevice), "copy envelope");
  check(cudaMemcpy(d_spec.get(), spec, sizeof(cfloat) * batch * frames * p.n_bins(), cudaMemcpyHostToDevice),
        "copy spectra");
  FftPlans plans(p.n_fft, CUFFT_C2R);
  check(cufftExecC2R(plans.get(static_cast<int>(batch * frames), 0), reinterpret_cast<cufftComplex*>(d_spec.get()),
                     d_frames.get()), "cufftExecC2R");
  launch_scale_by_window(d_frames.get(), batch * frames * p.n_fft, d_w.get(), p.n_fft, 0);
  launch_offline_overlap_add(d_frames.get(), batch, frames, p.n_fft, p.hop, d_env.get(), len, d_y.get(), 0);
  check(cudaMemcpy(out, d_y.get(), sizeof(float) * batch * len, cudaMemcpyDeviceToHost), "copy out");
}

}  // namespace cuda
}  // namespace streambin
