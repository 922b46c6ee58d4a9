// STFT parameters shared by every op of streambin._C (CPU and CUDA).
//
// Framing contract (docs/architecture.md): the window is a periodic Hann of length
// win_length, centred in an n_fft frame. Streaming frame k is complete once input
// samples 0 .. (k+1)*hop-1 have arrived; its non-zero window covers the newest
// win_length samples. Offline, that equals a center=False STFT of the input with
// prime_samples() zeros prepended. Synthesis by overlap-add then delays the signal
// by exactly latency_samples() = win_length - hop.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace streambin {

struct StftParams {
  int n_fft = 512;
  int win_length = 400;
  int hop = 160;

  int n_bins() const { return n_fft / 2 + 1; }
  // First window sample inside the n_fft frame.
  int window_offset() const { return (n_fft - win_length) / 2; }
  // Samples of history the analyser needs per frame (everything up to the window's end).
  int history() const { return window_offset() + win_length; }
  // Zeros the offline equivalent prepends to reproduce streaming frames.
  int prime_samples() const { return history() - hop; }
  int latency_samples() const { return win_length - hop; }

  void validate() const {
    auto fail = [](const std::string& msg) { throw std::invalid_argument("streambin STFT: " + msg); };
    if (n_fft < 2 || n_fft % 2 != 0) fail("n_fft must be an even integer >= 2, got " + std::to_string(n_fft));
    if (win_length < 1 || win_length > n_fft)
      fail("win_length must be in [1, n_fft=" + std::to_string(n_fft) + "], got " + std::to_string(win_length));
    if ((n_fft - win_length) % 2 != 0)
      fail("n_fft - win_length must be even so the window can be centred, got n_fft=" +
           std::to_string(n_fft) + " win_length=" + std::to_string(win_length));
    if (hop < 1 || hop > win_length)
      fail("hop must be in [1, win_length=" + std::to_string(win_length) + "], got " + std::to_string(hop));
  }
};

// Periodic Hann of length win_length, zero-padded (centred) to n_fft.
std::vector<float> padded_hann(const StftParams& p);

// Steady-state sum of squared windows seen by output sample j (0 <= j < hop) of each
// synthesised hop; the streaming synthesiser divides by it.
std::vector<float> window_square_envelope(const StftParams& p);

}  // namespace streambin
