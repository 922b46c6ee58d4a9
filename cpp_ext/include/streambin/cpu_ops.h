// CPU implementations of streambin's DSP ops (KissFFT underneath).
// Complex values are interleaved float pairs (std::complex<float>, same layout as
// numpy complex64 and kiss_fft_cpx). No function here allocates per call except
// where noted; the streaming classes allocate once in their constructor.
#pragma once

#include <complex>
#include <cstdint>
#include <memory>
#include <vector>

#include "streambin/stft_params.h"

namespace streambin {

using cfloat = std::complex<float>;

// Real FFT of fixed size n (even) through kiss_fftr. inverse() is unnormalised.
class RealFft {
 public:
  explicit RealFft(int n);
  ~RealFft();
  RealFft(const RealFft&) = delete;
  RealFft& operator=(const RealFft&) = delete;
  void forward(const float* in, cfloat* out) const;   // n real -> n/2+1 complex
  void inverse(const cfloat* in, float* out) const;   // n/2+1 complex -> n real (x n)
  int size() const { return n_; }

 private:
  int n_;
  void* fwd_;  // kiss_fftr_cfg
  void* inv_;
};

// Push samples, get every frame completed by them (see stft_params.h for framing).
class StreamingStft {
 public:
  explicit StreamingStft(const StftParams& p);
  // Frames a push of n samples will produce from the current state.
  int64_t frames_for(int64_t n) const { return (pending_ + n) / params_.hop; }
  // x: n float32 (finite, else std::invalid_argument and no state change);
  // out: room for frames_for(n) * n_bins complex. Returns the number of frames written.
  int64_t push(const float* x, int64_t n, cfloat* out);
  void reset();
  const StftParams& params() const { return params_; }

 private:
  void emit_frame(cfloat* out);
  StftParams params_;
  RealFft fft_;
  std::vector<float> window_;   // n_fft
  std::vector<float> history_;  // last history() samples, newest last
  std::vector<float> scratch_;  // n_fft
  int pending_ = 0;             // samples received since the last emitted frame
};

// Push frames, get finished samples by windowed overlap-add, normalised by the
// steady-state window-square envelope. Output lags the analyser's input by
// params.latency_samples().
class StreamingIstft {
 public:
  StreamingIstft(const StftParams& p, int channels);
  // frames: (channels, k, n_bins) complex, channel stride given in elements;
  // out: (channels, k*hop) float, contiguous.
  void push(const cfloat* frames, int64_t k, int64_t channel_stride, float* out);
  void reset();
  int channels() const { return channels_; }
  const StftParams& params() const { return params_; }

 private:
  StftParams params_;
  int channels_;
  RealFft fft_;
  std::vector<float> window_;     // n_fft
  std::vector<float> inv_env_;    // hop: 1 / steady-state window-square sum
  std::vector<float> acc_;        // (channels, n_fft) overlap-add accumulators
  std::vector<float> scratch_;    // n_fft
};

// Chirp-z transform (Bluestein) of real windows of fixed even length w: n_out complex values
// per window, at frequencies and with gains the caller's vectors define (streambin/dsp.py's
// ChirpZ builds them). The samples are packed in pairs, a[m] = pre[2m] x[2m] + pre[2m+1] x[2m+1]
// (m < w/2, zero-padded to n), so the two complex FFTs are of size n >= w/2 + 2 n_out - 2, not
// w + n_out - 1; g = ifft(fft(a) * kernel_fft) / n, c = n_out - 1, and
//   out[j] = post_pos[j] g[c + j] + post_neg[j] conj(g[c - j]),  j < n_out
// (the pair's even and odd halves separated through a real signal's conjugate symmetry).
// All buffers are allocated in the constructor.
class ChirpZ {
 public:
  // pre: w, kernel_fft: n, post_pos and post_neg: n_out complex values (copied).
  ChirpZ(const cfloat* pre, int w, const cfloat* kernel_fft, int n, const cfloat* post_pos, const cfloat* post_neg,
         int n_out);
  ~ChirpZ();
  ChirpZ(const ChirpZ&) = delete;
  ChirpZ& operator=(const ChirpZ&) = delete;
  // k windows, window t the w samples from x + t * hop; out: (k, n_out) contiguous.
  void run(const float* x, int64_t k, int64_t hop, cfloat* out);
  int window() const { return w_; }
  int fft_size() const { return n_; }
  int n_out() const { return n_out_; }

 private:
  int w_, n_, n_out_;
  std::vector<cfloat> pre_, kernel_, pos_, neg_;  // pos_ and neg_ carry the inverse FFT's 1/n
  std::vector<cfloat> time_, freq_, conv_;        // n each: packed input, its FFT, the convolution
  void* fwd_;                                     // kiss_fft_cfg
  void* inv_;
};

// Mask multiply. spec: (k, F) mono spectrogram frames. mask: real/imag planes addressed
// with element strides (c, part, f, t) so a slice of the model output (C, 2, F, T) can be
// read in place. Modes:
//   kDirect: out[c, t, f] = spec[t, f] * (mask[c,0,f,t] + i mask[c,1,f,t]),  c < C
//   kSide:   one mask D; out[0] = spec * (1 + D), out[1] = spec * (1 - D)   (L = M + D, R = M - D)
// out: (C_out, k, F) contiguous; may alias spec when C_out == 1 (in place).
enum class MaskMode { kDirect = 0, kSide = 1 };
struct MaskStrides {
  int64_t c, part, f, t;
};
void apply_mask(const cfloat* spec, int64_t k, int64_t n_bins, const float* mask, int64_t n_masks,
                MaskStrides strides, MaskMode mode, cfloat* out);

// Offline, batched. x: (batch, n) with n >= n_fft; frames = 1 + (n - n_fft) / hop, no padding
// (callers pad). out: (batch, frames, n_bins).
void stft_frames(const StftParams& p, const float* x, int64_t batch, int64_t n, cfloat* out);
// Inverse of stft_frames: (batch, frames, n_bins) -> (batch, n_fft + (frames-1)*hop) by
// overlap-add divided by the exact window-square envelope of these frames (0 where that
// envelope is below 1e-11, i.e. outside every window).
void istft_frames(const StftParams& p, const cfloat* spec, int64_t batch, int64_t frames, float* out);

}  // namespace streambin
