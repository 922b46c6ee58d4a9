// Thin RAII wrapper over KissFFT's real transforms.
#include <kiss_fftr.h>

#include <stdexcept>
#include <string>

#include "streambin/cpu_ops.h"

static_assert(sizeof(kiss_fft_cpx) == sizeof(std::complex<float>), "kiss_fft_cpx layout");

namespace streambin {

RealFft::RealFft(int n) : n_(n), fwd_(nullptr), inv_(nullptr) {
  if (n < 2 || n % 2 != 0) throw std::invalid_argument("RealFft: size must be even, got " + std::to_string(n));
  fwd_ = kiss_fftr_alloc(n, 0, nullptr, nullptr);
  inv_ = kiss_fftr_alloc(n, 1, nullptr, nullptr);
  if (!fwd_ || !inv_) throw std::runtime_error("RealFft: kiss_fftr_alloc failed for size " + std::to_string(n));
}

RealFft::~RealFft() {
  kiss_fftr_free(fwd_);
  kiss_fftr_free(inv_);
}

void RealFft::forward(const float* in, cfloat* out) const {
  kiss_fftr(static_cast<kiss_fftr_cfg>(fwd_), in, reinterpret_cast<kiss_fft_cpx*>(out));
}

void RealFft::inverse(const cfloat* in, float* out) const {
  kiss_fftri(static_cast<kiss_fftr_cfg>(inv_), reinterpret_cast<const kiss_fft_cpx*>(in), out);
}

}  // namespace streambin
