// Device queries.
#include "common.cuh"
#include "streambin/cuda_ops.h"

namespace streambin {
namespace cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

}  // namespace cuda
}  // namespace streambin
