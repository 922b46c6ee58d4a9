// Chirp-z transform of real fixed-length windows through KissFFT's complex transform.
#include <kiss_fft.h>

#include <stdexcept>
#include <string>

#include "streambin/cpu_ops.h"

namespace streambin {

namespace {

// a * b without std::complex's NaN/inf recovery (a library call per product at -O3).
inline cfloat mul(cfloat a, cfloat b) {
  return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
}

}  // namespace

ChirpZ::ChirpZ(const cfloat* pre, int w, const cfloat* kernel_fft, int n, const cfloat* post_pos,
               const cfloat* post_neg, int n_out)
    : w_(w), n_(n), n_out_(n_out), fwd_(nullptr), inv_(nullptr) {
  if (w < 2 || w % 2 != 0 || n_out < 1 || n < w / 2 + 2 * n_out - 2)
    throw std::invalid_argument("ChirpZ: need an even window >= 2, n_out >= 1 and an FFT size >= window/2 + "
                                "2*n_out - 2 (else the circular convolution wraps), got window=" + std::to_string(w) +
                                " n_out=" + std::to_string(n_out) + " fft size=" + std::to_string(n));
  pre_.assign(pre, pre + w);
  kernel_.assign(kernel_fft, kernel_fft + n);
  pos_.resize(n_out);
  neg_.resize(n_out);
  for (int j = 0; j < n_out; ++j) {
    pos_[j] = post_pos[j] / static_cast<float>(n);
    neg_[j] = post_neg[j] / static_cast<float>(n);
  }
  time_.assign(n, cfloat(0.0f, 0.0f));
  freq_.assign(n, cfloat(0.0f, 0.0f));
  conv_.assign(n, cfloat(0.0f, 0.0f));
  fwd_ = kiss_fft_alloc(n, 0, nullptr, nullptr);
  inv_ = kiss_fft_alloc(n, 1, nullptr, nullptr);
  if (!fwd_ || !inv_) {
    kiss_fft_free(fwd_);
    kiss_fft_free(inv_);
    throw std::runtime_error("ChirpZ: kiss_fft_alloc failed for size " + std::to_string(n));
  }
}

ChirpZ::~ChirpZ() {
  kiss_fft_free(fwd_);
  kiss_fft_free(inv_);
}

void ChirpZ::run(const float* x, int64_t k, int64_t hop, cfloat* out) {
  auto* t = reinterpret_cast<kiss_fft_cpx*>(time_.data());
  auto* f = reinterpret_cast<kiss_fft_cpx*>(freq_.data());
  auto* c = reinterpret_cast<kiss_fft_cpx*>(conv_.data());
  const int half = w_ / 2, centre = n_out_ - 1;
  for (int64_t frame = 0; frame < k; ++frame) {
    const float* src = x + frame * hop;
    // time_[w/2, n) stays zero from the constructor; only [0, w/2) is written.
    for (int m = 0; m < half; ++m) time_[m] = pre_[2 * m] * src[2 * m] + pre_[2 * m + 1] * src[2 * m + 1];
    kiss_fft(static_cast<kiss_fft_cfg>(fwd_), t, f);
    for (int i = 0; i < n_; ++i) freq_[i] = mul(freq_[i], kernel_[i]);
    // Out of place: KissFFT would allocate a temporary for an in-place transform.
    kiss_fft(static_cast<kiss_fft_cfg>(inv_), f, c);
    cfloat* dst = out + frame * n_out_;
    for (int j = 0; j < n_out_; ++j)
      dst[j] = mul(pos_[j], conv_[centre + j]) + mul(neg_[j], std::conj(conv_[centre - j]));
  }
}

}  // namespace streambin
