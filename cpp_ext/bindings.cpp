// The only pybind11 file of streambin._C. Each concept has an init_x(m); the module
// calls them in turn. Native work runs with the GIL released. Inputs are checked here
// (dtype, rank, shape, contiguity) with messages that name the expected layout;
// streambin/dsp.py is the documented Python API on top of this.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <complex>
#include <sstream>
#include <string>

#include "streambin/cpu_ops.h"
#include "streambin/stft_params.h"
#ifdef STREAMBIN_WITH_CUDA
#include "streambin/cuda_ops.h"
#endif

namespace py = pybind11;
using streambin::cfloat;
using streambin::StftParams;

namespace {

std::string shape_of(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

// Checks dtype, rank and C-contiguity; the message names what was expected.
template <typename T>
void require(const py::array& a, int ndim, const char* name, const char* expected) {
  const bool dtype_ok = py::isinstance<py::array_t<T>>(a) && a.dtype().is(py::dtype::of<T>());
  if (!dtype_ok || a.ndim() != ndim || !(a.flags() & py::array::c_style)) {
    std::ostringstream s;
    s << name << ": expected a C-contiguous " << expected << " array, got dtype "
      << std::string(py::str(a.dtype())) << " shape " << shape_of(a)
      << ((a.flags() & py::array::c_style) ? "" : " (not C-contiguous)");
    throw py::value_error(s.str());
  }
}

StftParams make_params(int n_fft, int win_length, int hop) {
  StftParams p{n_fft, win_length, hop};
  p.validate();
  return p;
}

void init_params(py::module_& m) {
  m.def("prime_samples", [](int n_fft, int win, int hop) { return make_params(n_fft, win, hop).prime_samples(); },
        py::arg("n_fft"), py::arg("win_length"), py::arg("hop"),
        "Zeros the offline equivalent of the streaming analyser prepends: (n_fft + win_length)//2 - hop.");
  m.def("latency_samples", [](int n_fft, int win, int hop) { return make_params(n_fft, win, hop).latency_samples(); },
        py::arg("n_fft"), py::arg("win_length"), py::arg("hop"),
        "Delay of streaming analysis -> synthesis: win_length - hop samples.");
  m.def("padded_hann", [](int n_fft, int win, int hop) {
          auto w = streambin::padded_hann(make_params(n_fft, win, hop));
          return py::array_t<float>(w.size(), w.data());
        }, py::arg("n_fft"), py::arg("win_length"), py::arg("hop"),
        "Periodic Hann of length win_length centred in n_fft zeros: (n_fft,) float32.");
}

void init_streaming_stft(py::module_& m) {
  py::class_<streambin::StreamingStft>(m, "StreamingStft")
      .def(py::init([](int n_fft, int win, int hop) { return new streambin::StreamingStft(make_params(n_fft, win, hop)); }),
           py::arg("n_fft"), py::arg("win_length"), py::arg("hop"))
      .def("frames_for", &streambin::StreamingStft::frames_for, py::arg("n"))
      .def("push", [](streambin::StreamingStft& self, const py::array& x) {
             require<float>(x, 1, "StreamingStft.push(x)", "(n,) float32");
             const int64_t n = x.shape(0);
             py::array_t<std::complex<float>> out({self.frames_for(n), int64_t(self.params().n_bins())});
             const float* src = static_cast<const float*>(x.data());
             cfloat* dst = reinterpret_cast<cfloat*>(out.mutable_data());
             {
               py::gil_scoped_release release;
               self.push(src, n, dst);
             }
             return out;
           }, py::arg("x"), "Push (n,) float32 samples; returns the completed frames (k, n_bins) complex64.")
      .def("push_into", [](streambin::StreamingStft& self, const py::array& x, py::array& out) {
             require<float>(x, 1, "StreamingStft.push_into(x)", "(n,) float32");
             require<std::complex<float>>(out, 2, "StreamingStft.push_into(out)", "(max_frames, n_bins) complex64");
             const int64_t n = x.shape(0), k = self.frames_for(n);
             if (out.shape(0) < k || out.shape(1) != self.params().n_bins())
               throw py::value_error("StreamingStft.push_into(out): need at least (" + std::to_string(k) + ", " +
                                     std::to_string(self.params().n_bins()) + ") complex64, got " + shape_of(out));
             const float* src = static_cast<const float*>(x.data());
             cfloat* dst = reinterpret_cast<cfloat*>(out.mutable_data());
             py::gil_scoped_release release;
             return self.push(src, n, dst);
           }, py::arg("x"), py::arg("out"), "Like push, into a preallocated buffer; returns the frame count.")
      .def("reset", &streambin::StreamingStft::reset);
}

void init_streaming_istft(py::module_& m) {
  py::class_<streambin::StreamingIstft>(m, "StreamingIstft")
      .def(py::init([](int n_fft, int win, int hop, int channels) {
             return new streambin::StreamingIstft(make_params(n_fft, win, hop), channels);
           }), py::arg("n_fft"), py::arg("win_length"), py::arg("hop"), py::arg("channels") = 1)
      .def_property_readonly("channels", &streambin::StreamingIstft::channels)
      .def("push_into", [](streambin::StreamingIstft& self, const py::array& frames, py::array& out) {
             const int C = self.channels();
             const int n_bins = self.params().n_bins(), hop = self.params().hop;
             require<std::complex<float>>(frames, 3, "StreamingIstft.push(frames)", "(channels, k, n_bins) complex64");
             if (frames.shape(0) != C || frames.shape(2) != n_bins)
               throw py::value_error("StreamingIstft.push(frames): expected (" + std::to_string(C) + ", k, " +
                                     std::to_string(n_bins) + ") complex64, got " + shape_of(frames));
             const int64_t k = frames.shape(1);
             require<float>(out, 2, "StreamingIstft.push_into(out)", "(channels, k*hop) float32");
             if (out.shape(0) != C || out.shape(1) != k * hop)
               throw py::value_error("StreamingIstft.push_into(out): expected (" + std::to_string(C) + ", " +
                                     std::to_string(k * hop) + ") float32, got " + shape_of(out));
             const cfloat* src = reinterpret_cast<const cfloat*>(frames.data());
             float* dst = static_cast<float*>(out.mutable_data());
             py::gil_scoped_release release;
             self.push(src, k, k * n_bins, dst);
           }, py::arg("frames"), py::arg("out"),
           "Push (channels, k, n_bins) complex64 frames; writes (channels, k*hop) float32 finished samples.")
      .def("reset", &streambin::StreamingIstft::reset);
}

void init_mask(py::module_& m) {
  m.def("apply_mask", [](const py::array& spec, const py::array& mask, py::array& out, int mode) {
          require<std::complex<float>>(spec, 2, "apply_mask(spec)", "(k, n_bins) complex64");
          const int64_t k = spec.shape(0), n_bins = spec.shape(1);
          // The mask may be a strided view (a slice of the model output): only dtype/rank checked.
          if (!mask.dtype().is(py::dtype::of<float>()) || mask.ndim() != 4)
            throw py::value_error("apply_mask(mask): expected a float32 (n_masks, 2, n_bins, k) array, got dtype " +
                                  std::string(py::str(mask.dtype())) + " shape " + shape_of(mask));
          const int64_t n_masks = mask.shape(0);
          if (mask.shape(1) != 2 || mask.shape(2) != n_bins || mask.shape(3) != k)
            throw py::value_error("apply_mask(mask): expected (n_masks, 2, " + std::to_string(n_bins) + ", " +
                                  std::to_string(k) + ") float32 to match spec " + shape_of(spec) + ", got " +
                                  shape_of(mask));
          if (mode != 0 && mode != 1) throw py::value_error("apply_mask(mode): expected 0 (direct) or 1 (side)");
          if (mode == 1 && n_masks != 1)
            throw py::value_error("apply_mask: side mode takes exactly one mask, got n_masks=" + std::to_string(n_masks));
          const int64_t n_out = mode == 1 ? 2 : n_masks;
          require<std::complex<float>>(out, 3, "apply_mask(out)", "(n_out, k, n_bins) complex64");
          if (out.shape(0) != n_out || out.shape(1) != k || out.shape(2) != n_bins)
            throw py::value_error("apply_mask(out): expected (" + std::to_string(n_out) + ", " + std::to_string(k) +
                                  ", " + std::to_string(n_bins) + ") complex64, got " + shape_of(out));
          if (mode == 1 && out.data() == spec.data())
            throw py::value_error("apply_mask: side mode writes two channels and cannot run in place on spec");
          const int64_t es = sizeof(float);
          for (int d = 0; d < 4; ++d)
            if (mask.strides(d) % es != 0) throw py::value_error("apply_mask(mask): strides must be multiples of 4 bytes");
          streambin::MaskStrides s{mask.strides(0) / es, mask.strides(1) / es, mask.strides(2) / es, mask.strides(3) / es};
          const cfloat* sp = reinterpret_cast<const cfloat*>(spec.data());
          const float* mp = static_cast<const float*>(mask.data());
          cfloat* op = reinterpret_cast<cfloat*>(out.mutable_data());
          py::gil_scoped_release release;
          streambin::apply_mask(sp, k, n_bins, mp, n_masks, s, static_cast<streambin::MaskMode>(mode), op);
        }, py::arg("spec"), py::arg("mask"), py::arg("out"), py::arg("mode") = 0,
        "Complex-mask multiply into out (may be spec itself for one direct mask).");
}

void init_offline(py::module_& m) {
  m.def("stft_frames", [](const py::array& x, int n_fft, int win, int hop) {
          const StftParams p = make_params(n_fft, win, hop);
          require<float>(x, 2, "stft_frames(x)", "(batch, n) float32");
          const int64_t batch = x.shape(0), n = x.shape(1);
          if (n < n_fft) throw py::value_error("stft_frames(x): need at least n_fft=" + std::to_string(n_fft) +
                                               " samples per row, got " + std::to_string(n));
          const int64_t frames = 1 + (n - n_fft) / hop;
          py::array_t<std::complex<float>> out({batch, frames, int64_t(p.n_bins())});
          const float* src = static_cast<const float*>(x.data());
          cfloat* dst = reinterpret_cast<cfloat*>(out.mutable_data());
          {
            py::gil_scoped_release release;
            streambin::stft_frames(p, src, batch, n, dst);
          }
          return out;
        }, py::arg("x"), py::arg("n_fft"), py::arg("win_length"), py::arg("hop"),
        "Unpadded framing STFT: (batch, n) float32 -> (batch, 1 + (n - n_fft)//hop, n_bins) complex64.");
  m.def("istft_frames", [](const py::array& spec, int n_fft, int win, int hop) {
          const StftParams p = make_params(n_fft, win, hop);
          require<std::complex<float>>(spec, 3, "istft_frames(spec)", "(batch, frames, n_bins) complex64");
          if (spec.shape(2) != p.n_bins() || spec.shape(1) < 1)
            throw py::value_error("istft_frames(spec): expected (batch, frames >= 1, " + std::to_string(p.n_bins()) +
                                  ") complex64, got " + shape_of(spec));
          const int64_t batch = spec.shape(0), frames = spec.shape(1);
          py::array_t<float> out({batch, int64_t(n_fft + (frames - 1) * hop)});
          const cfloat* src = reinterpret_cast<const cfloat*>(spec.data());
          float* dst = out.mutable_data();
          {
            py::gil_scoped_release release;
            streambin::istft_frames(p, src, batch, frames, dst);
          }
          return out;
        }, py::arg("spec"), py::arg("n_fft"), py::arg("win_length"), py::arg("hop"),
        "Overlap-add inverse of stft_frames: -> (batch, n_fft + (frames-1)*hop) float32.");
}

#ifdef STREAMBIN_WITH_CUDA
void init_cuda(py::module_& m) {
  namespace sc = streambin::cuda;
  m.def("cuda_device_count", &sc::device_count, "CUDA devices visible (0 without a driver or GPU).");
  m.def("cuda_device_name", &sc::device_name, py::arg("device") = 0);
  py::class_<sc::StreamingStftCuda>(m, "StreamingStftCuda")
      .def(py::init([](int n_fft, int win, int hop, int64_t max_chunk, int device) {
             return new sc::StreamingStftCuda(make_params(n_fft, win, hop), max_chunk, device);
           }), py::arg("n_fft"), py::arg("win_length"), py::arg("hop"), py::arg("max_chunk"), py::arg("device") = 0)
      .def("frames_for", &sc::StreamingStftCuda::frames_for, py::arg("n"))
      .def("push_ptr", [](sc::StreamingStftCuda& self, uintptr_t x, int64_t n, uintptr_t out, uintptr_t stream) {
             py::gil_scoped_release release;
             return self.push_device(x, n, out, stream);
           }, py::arg("x_ptr"), py::arg("n"), py::arg("out_ptr"), py::arg("stream") = 0,
           "Device pointers: n float32 in, frames_for(n) x n_bins complex64 out, enqueued on stream.")
      .def("push", [](sc::StreamingStftCuda& self, const py::array& x) {
             require<float>(x, 1, "StreamingStftCuda.push(x)", "(n,) float32");
             const int64_t n = x.shape(0);
             py::array_t<std::complex<float>> out({self.frames_for(n), int64_t(self.n_bins())});
             const float* src = static_cast<const float*>(x.data());
             cfloat* dst = reinterpret_cast<cfloat*>(out.mutable_data());
             py::gil_scoped_release release;
             self.push_host(src, n, dst);
             return out;
           }, py::arg("x"))
      .def("reset", &sc::StreamingStftCuda::reset);
  py::class_<sc::StreamingIstftCuda>(m, "StreamingIstftCuda")
      .def(py::init([](int n_fft, int win, int hop, int channels, int64_t max_frames, int device) {
             return new sc::StreamingIstftCuda(make_params(n_fft, win, hop), channels, max_frames, device);
           }), py::arg("n_fft"), py::arg("win_length"), py::arg("hop"), py::arg("channels"), py::arg("max_frames"),
           py::arg("device") = 0)
      .def("push_ptr", [](sc::StreamingIstftCuda& self, uintptr_t frames, int64_t k, uintptr_t out, uintptr_t stream) {
             py::gil_scoped_release release;
             self.push_device(frames, k, out, stream);
           }, py::arg("frames_ptr"), py::arg("k"), py::arg("out_ptr"), py::arg("stream") = 0,
           "Device pointers: (channels, k, n_bins) complex64 in, (channels, k*hop) float32 out.")
      .def("push_into", [](sc::StreamingIstftCuda& self, const py::array& frames, py::array& out) {
             require<std::complex<float>>(frames, 3, "StreamingIstftCuda.push(frames)", "(channels, k, n_bins) complex64");
             require<float>(out, 2, "StreamingIstftCuda.push_into(out)", "(channels, k*hop) float32");
             const cfloat* src = reinterpret_cast<const cfloat*>(frames.data());
             float* dst = static_cast<float*>(out.mutable_data());
             const int64_t k = frames.shape(1);
             py::gil_scoped_release release;
             self.push_host(src, k, dst);
           }, py::arg("frames"), py::arg("out"))
      .def("reset", &sc::StreamingIstftCuda::reset);
  m.def("apply_mask_ptr", [](uintptr_t spec, int64_t k, int64_t n_bins, uintptr_t mask, int64_t n_masks, int64_t sc_,
                             int64_t sp, int64_t sf, int64_t st, int mode, uintptr_t out, uintptr_t stream) {
          py::gil_scoped_release release;
          sc::apply_mask_device(spec, k, n_bins, mask, n_masks, sc_, sp, sf, st, mode, out, stream);
        }, py::arg("spec_ptr"), py::arg("k"), py::arg("n_bins"), py::arg("mask_ptr"), py::arg("n_masks"),
        py::arg("stride_c"), py::arg("stride_part"), py::arg("stride_f"), py::arg("stride_t"), py::arg("mode"),
        py::arg("out_ptr"), py::arg("stream") = 0, "Mask multiply on device memory (element strides).");
  m.def("apply_mask_cuda", [](const py::array& spec, const py::array& mask, py::array& out, int mode, int device) {
          require<std::complex<float>>(spec, 2, "apply_mask_cuda(spec)", "(k, n_bins) complex64");
          require<float>(mask, 4, "apply_mask_cuda(mask)", "(n_masks, 2, n_bins, k) float32");
          require<std::complex<float>>(out, 3, "apply_mask_cuda(out)", "(n_out, k, n_bins) complex64");
          const cfloat* sp = reinterpret_cast<const cfloat*>(spec.data());
          const float* mp = static_cast<const float*>(mask.data());
          cfloat* op = reinterpret_cast<cfloat*>(out.mutable_data());
          const int64_t k = spec.shape(0), n_bins = spec.shape(1), n_masks = mask.shape(0);
          py::gil_scoped_release release;
          sc::apply_mask_host(sp, k, n_bins, mp, n_masks, mode, op, device);
        }, py::arg("spec"), py::arg("mask"), py::arg("out"), py::arg("mode") = 0, py::arg("device") = 0);
  m.def("stft_frames_cuda", [](const py::array& x, int n_fft, int win, int hop, int device) {
          const StftParams p = make_params(n_fft, win, hop);
          require<float>(x, 2, "stft_frames_cuda(x)", "(batch, n) float32");
          const int64_t batch = x.shape(0), n = x.shape(1), frames = 1 + (n - n_fft) / hop;
          if (n < n_fft) throw py::value_error("stft_frames_cuda(x): need at least n_fft samples per row");
          py::array_t<std::complex<float>> out({batch, frames, int64_t(p.n_bins())});
          const float* src = static_cast<const float*>(x.data());
          cfloat* dst = reinterpret_cast<cfloat*>(out.mutable_data());
          {
            py::gil_scoped_release release;
            sc::stft_frames_host(p, src, batch, n, dst, device);
          }
          return out;
        }, py::arg("x"), py::arg("n_fft"), py::arg("win_length"), py::arg("hop"), py::arg("device") = 0);
  m.def("istft_frames_cuda", [](const py::array& spec, int n_fft, int win, int hop, int device) {
          const StftParams p = make_params(n_fft, win, hop);
          require<std::complex<float>>(spec, 3, "istft_frames_cuda(spec)", "(batch, frames, n_bins) complex64");
          const int64_t batch = spec.shape(0), frames = spec.shape(1);
          py::array_t<float> out({batch, int64_t(n_fft + (frames - 1) * hop)});
          const cfloat* src = reinterpret_cast<const cfloat*>(spec.data());
          float* dst = out.mutable_data();
          {
            py::gil_scoped_release release;
            sc::istft_frames_host(p, src, batch, frames, dst, device);
          }
          return out;
        }, py::arg("spec"), py::arg("n_fft"), py::arg("win_length"), py::arg("hop"), py::arg("device") = 0);
}
#endif

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "streambin native DSP core: streaming STFT/ISTFT, complex-mask multiply, offline transforms.";
#ifdef STREAMBIN_WITH_CUDA
  m.attr("built_with_cuda") = true;
#else
  m.attr("built_with_cuda") = false;
#endif
  init_params(m);
  init_streaming_stft(m);
  init_streaming_istft(m);
  init_mask(m);
  init_offline(m);
#ifdef STREAMBIN_WITH_CUDA
  init_cuda(m);
#endif
}
