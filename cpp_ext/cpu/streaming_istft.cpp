// Streaming ISTFT synthesiser: windowed overlap-add, one hop of finished samples per frame.
#include <algorithm>
#include <cstring>
#include <string>

#include "streambin/cpu_ops.h"

namespace streambin {

StreamingIstft::StreamingIstft(const StftParams& p, int channels)
    : params_((p.validate(), p)), channels_(channels), fft_(p.n_fft), window_(padded_hann(p)),
      inv_env_(p.hop), acc_(static_cast<size_t>(std::max(channels, 1)) * p.n_fft, 0.0f),
      scratch_(p.n_fft) {
  if (channels < 1) throw std::invalid_argument("streambin ISTFT: channels must be >= 1, got " + std::to_string(channels));
  const std::vector<float> env = window_square_envelope(p);
  for (int j = 0; j < p.hop; ++j) inv_env_[j] = 1.0f / env[j];
}

void StreamingIstft::reset() { std::fill(acc_.begin(), acc_.end(), 0.0f); }

void StreamingIstft::push(const cfloat* frames, int64_t k, int64_t channel_stride, float* out) {
  const int n_fft = params_.n_fft, hop = params_.hop, off = params_.window_offset();
  const int n_bins = params_.n_bins();
  const float scale = 1.0f / static_cast<float>(n_fft);  // kiss inverse is unnormalised
  for (int c = 0; c < channels_; ++c) {
    float* acc = acc_.data() + static_cast<size_t>(c) * n_fft;
    float* dst = out + static_cast<int64_t>(c) * k * hop;
    for (int64_t t = 0; t < k; ++t) {
      fft_.inverse(frames + c * channel_stride + t * n_bins, scratch_.data());
      for (int i = 0; i < n_fft; ++i) acc[i] += scratch_[i] * scale * window_[i];
      // Positions [off, off + hop) of this frame receive no more contributions.
      for (int j = 0; j < hop; ++j) dst[t * hop + j] = acc[off + j] * inv_env_[j];
      std::memmove(acc, acc + hop, sizeof(float) * (n_fft - hop));
      std::fill(acc + n_fft - hop, acc + n_fft, 0.0f);
    }
  }
}

}  // namespace streambin
