// Complex-mask multiply on CPU.
#include <string>
#include <stdexcept>

#include "streambin/cpu_ops.h"

namespace streambin {

void apply_mask(const cfloat* spec, int64_t k, int64_t n_bins, const float* mask, int64_t n_masks,
                MaskStrides s, MaskMode mode, cfloat* out) {
  if (mode == MaskMode::kSide && n_masks != 1)
    throw std::invalid_argument("apply_mask: side mode takes exactly 1 mask, got " + std::to_string(n_masks));
  const int64_t plane = k * n_bins;
  if (mode == MaskMode::kSide) {
    for (int64_t t = 0; t < k; ++t) {
      for (int64_t f = 0; f < n_bins; ++f) {
        const cfloat m = spec[t * n_bins + f];
        const cfloat d = m * cfloat(mask[f * s.f + t * s.t], mask[s.part + f * s.f + t * s.t]);
        out[t * n_bins + f] = m + d;
        out[plane + t * n_bins + f] = m - d;
      }
    }
    return;
  }
  // Direct mode; iterate masks innermost so out may alias spec when n_masks == 1.
  for (int64_t t = 0; t < k; ++t) {
    for (int64_t f = 0; f < n_bins; ++f) {
      const cfloat m = spec[t * n_bins + f];
      for (int64_t c = 0; c < n_masks; ++c) {
        const float* mc = mask + c * s.c + f * s.f + t * s.t;
        out[c * plane + t * n_bins + f] = m * cfloat(mc[0], mc[s.part]);
      }
    }
  }
}

}  // namespace streambin
