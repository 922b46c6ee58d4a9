// Shared helpers for the CUDA sources: error checks that throw with context.
#pragma once

#include <cuda_runtime.h>
#include <cufft.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace streambin {
namespace cuda {

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("streambin CUDA: ") + what + ": " + cudaGetErrorString(err));
}

inline void check(cufftResult err, const char* what) {
  if (err != CUFFT_SUCCESS)
    throw std::runtime_error(std::string("streambin cuFFT: ") + what + " failed with code " + std::to_string(int(err)));
}

inline cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

// Sets the device for the lifetime of the object and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (device != previous_) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }

 private:
  int previous_ = 0;
};

// Device buffer owned for the lifetime of the object.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) { resize(n); }
  ~DeviceBuffer() { if (ptr_) cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void resize(size_t n) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    size_ = n;
    if (n) check(cudaMalloc(&ptr_, n * sizeof(T)), "cudaMalloc");
  }
  T* get() const { return ptr_; }
  size_t size() const { return size_; }

 private:
  T* ptr_ = nullptr;
  size_t size_ = 0;
};

// Batched real FFT plans of one size; a plan per batch size is made once, when first used.
class FftPlans {
 public:
  FftPlans(int n, cufftType type) : n_(n), type_(type) {}
  ~FftPlans() { for (auto& p : plans_) cufftDestroy(p.second); }
  cufftHandle get(int batch, cudaStream_t stream) {
    for (auto& p : plans_) if (p.first == batch) { check(cufftSetStream(p.second, stream), "cufftSetStream"); return p.second; }
    cufftHandle h;
    int n = n_;
    check(cufftPlanMany(&h, 1, &n, nullptr, 1, 0, nullptr, 1, 0, type_, batch), "cufftPlanMany");
    check(cufftSetStream(h, stream), "cufftSetStream");
    plans_.push_back({batch, h});
    return h;
  }

 private:
  int n_;
  cufftType type_;
  std::vector<std::pair<int, cufftHandle>> plans_;
};

}  // namespace cuda
}  // namespace streambin
