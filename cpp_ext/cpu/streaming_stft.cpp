// Streaming STFT analyser: any number of samples in, every completed frame out.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "streambin/cpu_ops.h"

namespace streambin {

StreamingStft::StreamingStft(const StftParams& p)
    : params_((p.validate(), p)), fft_(p.n_fft), window_(padded_hann(p)),
      history_(p.history(), 0.0f), scratch_(p.n_fft, 0.0f) {}

void StreamingStft::reset() {
  std::fill(history_.begin(), history_.end(), 0.0f);
  pending_ = 0;
}

void StreamingStft::emit_frame(cfloat* out) {
  // history_ holds frame positions [0, history()); positions after it fall outside the
  // window (zero weight), so they are zero here rather than future samples.
  const int h = params_.history();
  for (int i = 0; i < h; ++i) scratch_[i] = history_[i] * window_[i];
  std::fill(scratch_.begin() + h, scratch_.end(), 0.0f);
  fft_.forward(scratch_.data(), out);
}

int64_t StreamingStft::push(const float* x, int64_t n, cfloat* out) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i]))
      throw std::invalid_argument("streambin STFT: input sample " + std::to_string(i) +
                                  " is not finite (NaN or inf); sanitise audio before pushing");
  }
  const int hop = params_.hop;
  const int h = params_.history();
  int64_t frames = 0;
  int64_t consumed = 0;
  while (consumed < n) {
    // Shift in up to the rest of the current hop, then emit a frame if the hop is full.
    const int64_t take = std::min<int64_t>(n - consumed, hop - pending_);
    std::memmove(history_.data(), history_.data() + take, sizeof(float) * (h - take));
    std::memcpy(history_.data() + h - take, x + consumed, sizeof(float) * take);
    consumed += take;
    pending_ += static_cast<int>(take);
    if (pending_ == hop) {
      emit_frame(out + frames * params_.n_bins());
      ++frames;
      pending_ = 0;
    }
  }
  return frames;
}

}  // namespace streambin
