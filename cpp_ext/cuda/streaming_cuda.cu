// Streaming STFT analyser and ISTFT synthesiser on the GPU (cuFFT + kernels.cu).
// Same framing and latency as the CPU classes (see stft_params.h).
#include <algorithm>
#include <cuComplex.h>
#include <vector>

#include "common.cuh"
#include "kernels.cuh"
#include "streambin/cuda_ops.h"

namespace streambin {
namespace cuda {

// ---------------------------------------------------------------------------- analyser

struct StreamingStftCuda::Impl {
  StftParams p;
  int device;
  int64_t max_chunk;
  int pending = 0;                // samples since the last frame (host-side bookkeeping)
  DeviceBuffer<float> window;     // n_fft
  DeviceBuffer<float> work;       // history() + max_chunk: [history | new samples]
  DeviceBuffer<float> history;    // history()
  DeviceBuffer<float> frames;     // max_frames * n_fft
  DeviceBuffer<float> host_in;    // staging for push_host
  DeviceBuffer<cfloat> host_out;
  FftPlans plans;
  Impl(const StftParams& params, int64_t chunk, int dev)
      : p(params), device(dev), max_chunk(chunk), plans(params.n_fft, CUFFT_R2C) {}
  int64_t max_frames() const { return (p.hop - 1 + max_chunk) / p.hop; }
  // Device buffers hold max_chunk samples: a longer (or negative) chunk is refused up front.
  void require_chunk(int64_t n) const {
    if (n < 0 || n > max_chunk)
      throw std::invalid_argument("StreamingStftCuda: chunk of " + std::to_string(n) +
                                  " samples exceeds max_chunk=" + std::to_string(max_chunk));
  }
};

StreamingStftCuda::StreamingStftCuda(const StftParams& p, int64_t max_chunk, int device)
    : impl_(new Impl((p.validate(), p), max_chunk, device)) {
  if (max_chunk < 1) throw std::invalid_argument("StreamingStftCuda: max_chunk must be >= 1");
  DeviceGuard guard(device);
  Impl& s = *impl_;
  const std::vector<float> w = padded_hann(p);
  s.window.resize(p.n_fft);
  check(cudaMemcpy(s.window.get(), w.data(), sizeof(float) * p.n_fft, cudaMemcpyHostToDevice), "copy window");
  s.work.resize(p.history() + max_chunk);
  s.history.resize(p.history());
  s.frames.resize(std::max<int64_t>(1, s.max_frames()) * p.n_fft);
  s.host_in.resize(max_chunk);
  s.host_out.resize(std::max<int64_t>(1, s.max_frames()) * p.n_bins());
  reset();
}

StreamingStftCuda::~StreamingStftCuda() = default;

void StreamingStftCuda::reset() {
  DeviceGuard guard(impl_->device);
  check(cudaMemset(impl_->history.get(), 0, sizeof(float) * impl_->p.history()), "reset history");
  check(cudaDeviceSynchronize(), "reset sync");
  impl_->pending = 0;
}

int64_t StreamingStftCuda::frames_for(int64_t n) const { return (impl_->pending + n) / impl_->p.hop; }

int StreamingStftCuda::n_bins() const { return impl_->p.n_bins(); }

const StftParams& StreamingStftCuda::params() const { return impl_->p; }

int64_t StreamingStftCuda::max_chunk() const { return impl_->max_chunk; }

int64_t StreamingStftCuda::push_device(uintptr_t x_ptr, int64_t n, uintptr_t out_ptr, uintptr_t stream_ptr) {
  Impl& s = *impl_;
  s.require_chunk(n);
  if (n == 0) return 0;
  DeviceGuard guard(s.device);
  cudaStream_t stream = as_stream(stream_ptr);
  const int h = s.p.history();
  float* work = s.work.get();
  check(cudaMemcpyAsync(work, s.history.get(), sizeof(float) * h, cudaMemcpyDeviceToDevice, stream), "stage history");
  check(cudaMemcpyAsync(work + h, reinterpret_cast<const float*>(x_ptr), sizeof(float) * n,
                        cudaMemcpyDeviceToDevice, stream), "stage input");
  const int64_t frames = frames_for(n);
  if (frames > 0) {
    // Frame j's history ends (exclusive) at work index h - pending + (j+1)*hop.
    const int64_t start = s.p.hop - s.pending;
    launch_frame_and_window(work, 0, start, s.p.hop, s.window.get(), s.p.n_fft, h, frames, 1, s.frames.get(),
                            stream);
    cufftHandle plan = s.plans.get(static_cast<int>(frames), stream);
    check(cufftExecR2C(plan, s.frames.get(), reinterpret_cast<cufftComplex*>(out_ptr)), "cufftExecR2C");
  }
  check(cudaMemcpyAsync(s.history.get(), work + n, sizeof(float) * h, cudaMemcpyDeviceToDevice, stream),
        "keep history");
  s.pending = static_cast<int>((s.pending + n) % s.p.hop);
  return frames;
}

int64_t StreamingStftCuda::push_host(const float* x, int64_t n, cfloat* out) {
  Impl& s = *impl_;
  s.require_chunk(n);  // before the copy into the max_chunk staging buffer
  DeviceGuard guard(s.device);
  const int64_t frames = frames_for(n);
  check(cudaMemcpy(s.host_in.get(), x, sizeof(float) * n, cudaMemcpyHostToDevice), "copy chunk in");
  push_device(reinterpret_cast<uintptr_t>(s.host_in.get()), n, reinterpret_cast<uintptr_t>(s.host_out.get()), 0);
  check(cudaMemcpy(out, s.host_out.get(), sizeof(cfloat) * frames * s.p.n_bins(), cudaMemcpyDeviceToHost),
        "copy frames out");
  return frames;
}

// ---------------------------------------------------------------------------- synthesiser

struct StreamingIstftCuda::Impl {
  StftParams p;
  int channels;
  int device;
  int64_t max_frames;
  DeviceBuffer<float> window_scaled;  // window / n_fft (cuFFT's inverse is unnormalised)
  DeviceBuffer<float> inv_env;        // hop
  DeviceBuffer<float> acc[2];         // double-buffered carried accumulators (channels, n_fft)
  int current = 0;
  DeviceBuffer<float> frames;         // (channels, max_frames, n_fft)
  DeviceBuffer<cfloat> spectra;      // private copy: cuFFT's C2R overwrites its input
  DeviceBuffer<float> host_out;
  FftPlans plans;
  Impl(const StftParams& params, int ch, int64_t mf, int dev)
      : p(params), channels(ch), device(dev), max_frames(mf), plans(params.n_fft, CUFFT_C2R) {}
};

StreamingIstftCuda::StreamingIstftCuda(const StftParams& p, int channels, int64_t max_frames, int device)
    : impl_(new Impl((p.validate(), p), channels, max_frames, device)) {
  if (channels < 1 || max_frames < 1)
    throw std::invalid_argument("StreamingIstftCuda: channels and max_frames must be >= 1");
  DeviceGuard guard(device);
  Impl& s = *impl_;
  std::vector<float> w = padded_hann(p);
  for (float& v : w) v /= static_cast<float>(p.n_fft);
  const std::vector<float> env = window_square_envelope(p);
  std::vector<float> inv(p.hop);
  for (int j = 0; j < p.hop; ++j) inv[j] = 1.0f / env[j];
  s.window_scaled.resize(p.n_fft);
  s.inv_env.resize(p.hop);
  check(cudaMemcpy(s.window_scaled.get(), w.data(), sizeof(float) * p.n_fft, cudaMemcpyHostToDevice), "copy window");
  check(cudaMemcpy(s.inv_env.get(), inv.data(), sizeof(float) * p.hop, cudaMemcpyHostToDevice), "copy envelope");
  for (auto& a : s.acc) a.resize(size_t(channels) * p.n_fft);
  s.frames.resize(size_t(channels) * max_frames * p.n_fft);
  s.spectra.resize(size_t(channels) * max_frames * p.n_bins());
  s.host_out.resize(size_t(channels) * max_frames * p.hop);
  reset();
}

StreamingIstftCuda::~StreamingIstftCuda() = default;

const StftParams& StreamingIstftCuda::params() const { return impl_->p; }

int StreamingIstftCuda::channels() const { return impl_->channels; }

int64_t StreamingIstftCuda::max_frames() const { return impl_->max_frames; }

void StreamingIstftCuda::reset() {
  Impl& s = *impl_;
  DeviceGuard guard(s.device);
  for (auto& a : s.acc) check(cudaMemset(a.get(), 0, sizeof(float) * a.size()), "reset accumulator");
  check(cudaDeviceSynchronize(), "reset sync");
  s.current = 0;
}

void StreamingIstftCuda::push_device(uintptr_t frames_ptr, int64_t k, uintptr_t out_ptr, uintptr_t stream_ptr) {
  Impl& s = *impl_;
  if (k < 0 || k > s.max_frames)
    throw std::invalid_argument("StreamingIstftCuda: " + std::to_string(k) + " frames exceed max_frames=" +
                                std::to_string(s.max_frames));
  if (k == 0) return;
  DeviceGuard guard(s.device);
  cudaStream_t stream = as_stream(stream_ptr);
  cufftHandle plan = s.plans.get(static_cast<int>(k * s.channels), stream);
  // cuFFT's out-of-place C2R clobbers its input: transform a private copy of the spectra.
  check(cudaMemcpyAsync(s.spectra.get(), reinterpret_cast<const void*>(frames_ptr),
                        sizeof(cfloat) * s.channels * k * s.p.n_bins(), cudaMemcpyDeviceToDevice, stream),
        "copy spectra");
  check(cufftExecC2R(plan, reinterpret_cast<cufftComplex*>(s.spectra.get()), s.frames.get()), "cufftExecC2R");
  launch_scale_by_window(s.frames.get(), int64_t(s.channels) * k * s.p.n_fft, s.window_scaled.get(), s.p.n_fft,
                         stream);
  launch_overlap_add(s.frames.get(), k, s.channels, s.p.n_fft, s.p.hop, s.p.window_offset(), s.inv_env.get(),
                     s.acc[s.current].get(), s.acc[1 - s.current].get(), reinterpret_cast<float*>(out_ptr), stream);
  s.current = 1 - s.current;
}

void StreamingIstftCuda::push_host(const cfloat* frames, int64_t k, float* out) {
  Impl& s = *impl_;
  DeviceGuard guard(s.device);
  if (k > s.max_frames)
    throw std::invalid_argument("StreamingIstftCuda: " + std::to_string(k) + " frames exceed max_frames=" +
                                std::to_string(s.max_frames));
  DeviceBuffer<cfloat> d_in(size_t(s.channels) * std::max<int64_t>(k, 1) * s.p.n_bins());
  check(cudaMemcpy(d_in.get(), frames, sizeof(cfloat) * s.channels * k * s.p.n_bins(), cudaMemcpyHostToDevice),
        "copy spectra in");
  push_device(reinterpret_cast<uintptr_t>(d_in.get()), k, reinterpret_cast<uintptr_t>(s.host_out.get()), 0);
  check(cudaMemcpy(out, s.host_out.get(), sizeof(float) * s.channels * k * s.p.hop, cudaMemcpyDeviceToHost),
        "copy samples out");
}

}  // namespace cuda
}  // namespace streambin
