// Analysis/synthesis windows shared by the CPU and CUDA paths.
#include <cmath>

#include "streambin/stft_params.h"

namespace streambin {

std::vector<float> padded_hann(const StftParams& p) {
  p.validate();
  std::vector<float> w(p.n_fft, 0.0f);
  const double two_pi = 2.0 * M_PI;
  for (int i = 0; i < p.win_length; ++i) {
    // Periodic Hann (torch.hann_window(periodic=True), scipy get_window fftbins=True).
    w[p.window_offset() + i] = static_cast<float>(0.5 - 0.5 * std::cos(two_pi * i / p.win_length));
  }
  return w;
}

std::vector<float> window_square_envelope(const StftParams& p) {
  // Output sample j of a synthesised hop sits at frame position window_offset()+j of the
  // newest frame, window_offset()+j+hop of the one before, and so on.
  const std::vector<float> w = padded_hann(p);
  std::vector<float> env(p.hop, 0.0f);
  for (int j = 0; j < p.hop; ++j) {
    double sum = 0.0;
    for (int pos = p.window_offset() + j; pos < p.n_fft; pos += p.hop) sum += double(w[pos]) * w[pos];
    env[j] = static_cast<float>(sum);
  }
  return env;
}

}  // namespace streambin
