// Offline batched STFT / ISTFT over whole signals (training, metrics, offline CLI).
#include <algorithm>
#include <vector>

#include "streambin/cpu_ops.h"

namespace streambin {

void stft_frames(const StftParams& p, const float* x, int64_t batch, int64_t n, cfloat* out) {
  p.validate();
  const int64_t frames = 1 + (n - p.n_fft) / p.hop;
  RealFft fft(p.n_fft);
  const std::vector<float> w = padded_hann(p);
  std::vector<float> buf(p.n_fft);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < frames; ++t) {
      const float* src = x + b * n + t * p.hop;
      for (int i = 0; i < p.n_fft; ++i) buf[i] = src[i] * w[i];
      fft.forward(buf.data(), out + (b * frames + t) * p.n_bins());
    }
  }
}

void istft_frames(const StftParams& p, const cfloat* spec, int64_t batch, int64_t frames, float* out) {
  p.validate();
  const int64_t len = p.n_fft + (frames - 1) * p.hop;
  RealFft fft(p.n_fft);
  const std::vector<float> w = padded_hann(p);
  std::vector<float> env(len, 0.0f), buf(p.n_fft);
  for (int64_t t = 0; t < frames; ++t)
    for (int i = 0; i < p.n_fft; ++i) env[t * p.hop + i] += w[i] * w[i];
  const float scale = 1.0f / static_cast<float>(p.n_fft);
  for (int64_t b = 0; b < batch; ++b) {
    float* y = out + b * len;
    std::fill(y, y + len, 0.0f);
    for (int64_t t = 0; t < frames; ++t) {
      fft.inverse(spec + (b * frames + t) * p.n_bins(), buf.data());
      for (int i = 0; i < p.n_fft; ++i) y[t * p.hop + i] += buf[i] * scale * w[i];
    }
    for (int64_t i = 0; i < len; ++i) y[i] = env[i] > 1e-11f ? y[i] / env[i] : 0.0f;
  }
}

}  // namespace streambin
