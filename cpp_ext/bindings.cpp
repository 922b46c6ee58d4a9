// The only pybind11 file of streambin._C. Each concept has an init_x(m); the module
// calls them in turn. Native work runs with the GIL released; a streaming object's state is
// guarded by a mutex of its own (Locked below). Inputs are checked here, on the CPU and the
// CUDA entry points alike (dtype, rank, shape, contiguity), with messages that name the
// expected layout; streambin/dsp.py is the documented Python API on top of this.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <complex>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "streambin/cpu_ops.h"
#include "streambin/stft_params.h"
#ifdef STREAMBIN_WITH_CUDA
#include "streambin/cuda_ops.h"
#endif

namespace py = pybind11;
using streambin::cfloat;
using streambin::StftParams;

namespace {

// "(2, 257)"; "(5,)" for one dimension, as numpy writes shapes.
std::string format_shape(const std::vector<int64_t>& dims) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < dims.size(); ++i) s << (i ? ", " : "") << dims[i];
  s << (dims.size() == 1 ? ",)" : ")");
  return s.str();
}

std::string shape_of(const py::array& a) {
  return format_shape(std::vector<int64_t>(a.shape(), a.shape() + a.ndim()));
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

// A streaming object (CPU or CUDA) that Python threads may share. Every call that reads or
// writes its state goes through run(), which releases the GIL and then holds the object's
// mutex: concurrent calls on one object run one after the other. The order (GIL released
// before the mutex is taken, mutex released before the GIL is taken back) means no thread
// ever waits for one while holding the other, so they cannot deadlock.
template <typename T>
class Locked {
 public:
  template <typename... Args>
  explicit Locked(Args&&... args) : obj_(std::forward<Args>(args)...) {}

  // fn(obj) with the GIL released and the mutex held; returns what fn returns.
  template <typename F>
  auto run(F&& fn) {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    return fn(obj_);
  }

  // For what is fixed at construction (STFT parameters, channels, buffer sizes): no lock.
  const T& fixed() const { return obj_; }

 private:
  T obj_;
  std::mutex mutex_;
};

// The most frames a push of n samples can complete, whatever is pending (< hop samples).
int64_t max_frames_for(int64_t n, int hop) { return (n + hop - 1) / hop; }

// out[:k] of an array allocated for the most frames a push could complete.
py::object first_rows(const py::array& out, int64_t k) {
  if (k == out.shape(0)) return out;
  return out[py::slice(0, static_cast<py::ssize_t>(k), 1)];
}

// Checks for a push of (channels, k, n_bins) complex64 frames into (channels, k*hop) float32
// samples (the streaming synthesisers, CPU and CUDA); returns k.
int64_t require_synthesis_io(const char* cls, const py::array& frames, const py::array& out, int channels,
                             const StftParams& p) {
  const std::string f_name = std::string(cls) + ".push(frames)", o_name = std::string(cls) + ".push_into(out)";
  require<std::complex<float>>(frames, 3, f_name.c_str(), "(channels, k, n_bins) complex64");
  if (frames.shape(0) != channels || frames.shape(2) != p.n_bins())
    throw py::value_error(f_name + ": expected (" + std::to_string(channels) + ", k, " + std::to_string(p.n_bins()) +
                          ") complex64, got " + shape_of(frames));
  const int64_t k = frames.shape(1);
  require<float>(out, 2, o_name.c_str(), "(channels, k*hop) float32");
  if (out.shape(0) != channels || out.shape(1) != k * p.hop)
    throw py::value_error(o_name + ": expected " + format_shape({channels, k * p.hop}) + " float32, got " +
                          shape_of(out));
  return k;
}

// Checks for a mask multiply (apply_mask and apply_mask_cuda): spec (k, n_bins) complex64,
// mask (n_masks, 2, n_bins, k) float32, out (n_out, k, n_bins) complex64 with n_out = n_masks
// (direct, mode 0) or 2 (side, mode 1: one mask). mask_strided: the mask may be any strided
// view (the CPU kernel reads it in place); otherwise it must be C-contiguous.
struct MaskCall {
  int64_t k, n_bins, n_masks;
};

MaskCall require_mask_call(const std::string& fn, const py::array& spec, const py::array& mask,
                           const py::array& out, int mode, bool mask_strided) {
  require<std::complex<float>>(spec, 2, (fn + "(spec)").c_str(), "(k, n_bins) complex64");
  const int64_t k = spec.shape(0), n_bins = spec.shape(1);
  if (mask_strided) {
    if (!mask.dtype().is(py::dtype::of<float>()) || mask.ndim() != 4)
      throw py::value_error(fn + "(mask): expected a float32 (n_masks, 2, n_bins, k) array, got dtype " +
                            std::string(py::str(mask.dtype())) + " shape " + shape_of(mask));
  } else {
    require<float>(mask, 4, (fn + "(mask)").c_str(), "(n_masks, 2, n_bins, k) float32");
  }
  const int64_t n_masks = mask.shape(0);
  if (mask.shape(1) != 2 || mask.shape(2) != n_bins || mask.shape(3) != k)
    throw py::value_error(fn + "(mask): expected (n_masks, 2, " + std::to_string(n_bins) + ", " + std::to_string(k) +
                          ") float32 to match spec " + shape_of(spec) + ", got " + shape_of(mask));
  if (mode != 0 && mode != 1) throw py::value_error(fn + "(mode): expected 0 (direct) or 1 (side)");
  if (mode == 1 && n_masks != 1)
    throw py::value_error(fn + ": side mode takes exactly one mask, got n_masks=" + std::to_string(n_masks));
  const int64_t n_out = mode == 1 ? 2 : n_masks;
  require<std::complex<float>>(out, 3, (fn + "(out)").c_str(), "(n_out, k, n_bins) complex64");
  if (out.shape(0) != n_out || out.shape(1) != k || out.shape(2) != n_bins)
    throw py::value_error(fn + "(out): expected " + format_shape({n_out, k, n_bins}) + " complex64, got " +
                          shape_of(out));
  return {k, n_bins, n_masks};
}

// Checks x of an offline STFT: (batch, n) float32 with n >= n_fft; returns the frame count.
int64_t require_stft_input(const char* fn, const py::array& x, const StftParams& p) {
  require<float>(x, 2, (std::string(fn) + "(x)").c_str(), "(batch, n) float32");
  const int64_t n = x.shape(1);
  if (n < p.n_fft)
    throw py::value_error(std::string(fn) + "(x): need at least n_fft=" + std::to_string(p.n_fft) +
                          " samples per row, got " + std::to_string(n));
  return 1 + (n - p.n_fft) / p.hop;
}

// Checks spec of an offline ISTFT: (batch, frames >= 1, n_bins) complex64.
void require_istft_input(const char* fn, const py::array& spec, const StftParams& p) {
  const std::string name = std::string(fn) + "(spec)";
  require<std::complex<float>>(spec, 3, name.c_str(), "(batch, frames, n_bins) complex64");
  if (spec.shape(2) != p.n_bins() || spec.shape(1) < 1)
    throw py::value_error(name + ": expected (batch, frames >= 1, " + std::to_string(p.n_bins()) +
                          ") complex64, got " + shape_of(spec));
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
  using Stft = Locked<streambin::StreamingStft>;
  py::class_<Stft>(m, "StreamingStft")
      .def(py::init([](int n_fft, int win, int hop) { return new Stft(make_params(n_fft, win, hop)); }),
           py::arg("n_fft"), py::arg("win_length"), py::arg("hop"))
      .def("frames_for", [](Stft& self, int64_t n) {
             return self.run([n](const streambin::StreamingStft& s) { return s.frames_for(n); });
           }, py::arg("n"))
      .def("push", [](Stft& self, const py::array& x) {
             require<float>(x, 1, "StreamingStft.push(x)", "(n,) float32");
             const int64_t n = x.shape(0);
             const StftParams& p = self.fixed().params();
             // Sized before the lock is taken, so for the most frames n samples can complete.
             py::array_t<std::complex<float>> out({max_frames_for(n, p.hop), int64_t(p.n_bins())});
             const float* src = static_cast<const float*>(x.data());
             cfloat* dst = reinterpret_cast<cfloat*>(out.mutable_data());
             const int64_t k = self.run([&](streambin::StreamingStft& s) { return s.push(src, n, dst); });
             return first_rows(out, k);
           }, py::arg("x"), "Push (n,) float32 samples; returns the completed frames (k, n_bins) complex64.")
      .def("push_into", [](Stft& self, const py::array& x, py::array& out) {
             require<float>(x, 1, "StreamingStft.push_into(x)", "(n,) float32");
             require<std::complex<float>>(out, 2, "StreamingStft.push_into(out)", "(max_frames, n_bins) complex64");
             const int64_t n = x.shape(0), rows = out.shape(0), cols = out.shape(1);
             const float* src = static_cast<const float*>(x.data());
             cfloat* dst = reinterpret_cast<cfloat*>(out.mutable_data());
             return self.run([&](streambin::StreamingStft& s) {
               // Checked under the lock: the frame count depends on the samples pending.
               const int64_t k = s.frames_for(n), n_bins = s.params().n_bins();
               if (rows < k || cols != n_bins)
                 throw py::value_error("StreamingStft.push_into(out): need at least " + format_shape({k, n_bins}) +
                                       " complex64, got " + format_shape({rows, cols}));
               return s.push(src, n, dst);
             });
           }, py::arg("x"), py::arg("out"), "Like push, into a preallocated buffer; returns the frame count.")
      .def("reset", [](Stft& self) { self.run([](streambin::StreamingStft& s) { s.reset(); }); });
}

void init_streaming_istft(py::module_& m) {
  using Istft = Locked<streambin::StreamingIstft>;
  py::class_<Istft>(m, "StreamingIstft")
      .def(py::init([](int n_fft, int win, int hop, int channels) {
             return new Istft(make_params(n_fft, win, hop), channels);
           }), py::arg("n_fft"), py::arg("win_length"), py::arg("hop"), py::arg("channels") = 1)
      .def_property_readonly("channels", [](const Istft& self) { return self.fixed().channels(); })
      .def("push_into", [](Istft& self, const py::array& frames, py::array& out) {
             const StftParams& p = self.fixed().params();
             const int64_t k = require_synthesis_io("StreamingIstft", frames, out, self.fixed().channels(), p);
             const cfloat* src = reinterpret_cast<const cfloat*>(frames.data());
             float* dst = static_cast<float*>(out.mutable_data());
             self.run([&](streambin::StreamingIstft& s) { s.push(src, k, k * p.n_bins(), dst); });
           }, py::arg("frames"), py::arg("out"),
           "Push (channels, k, n_bins) complex64 frames; writes (channels, k*hop) float32 finished samples.")
      .def("reset", [](Istft& self) { self.run([](streambin::StreamingIstft& s) { s.reset(); }); });
}

void init_chirp_z(py::module_& m) {
  using Czt = Locked<streambin::ChirpZ>;
  py::class_<Czt>(m, "ChirpZ")
      .def(py::init([](const py::array& pre, const py::array& kernel_fft, const py::array& post_pos,
                       const py::array& post_neg) {
             require<std::complex<float>>(pre, 1, "ChirpZ(pre)", "(window,) complex64");
             require<std::complex<float>>(kernel_fft, 1, "ChirpZ(kernel_fft)", "(fft_size,) complex64");
             require<std::complex<float>>(post_pos, 1, "ChirpZ(post_pos)", "(n_out,) complex64");
             require<std::complex<float>>(post_neg, 1, "ChirpZ(post_neg)", "(n_out,) complex64");
             if (post_neg.shape(0) != post_pos.shape(0))
               throw py::value_error("ChirpZ(post_neg): expected " + shape_of(post_pos) +
                                     " complex64 like post_pos, got " + shape_of(post_neg));
             auto ptr = [](const py::array& a) { return reinterpret_cast<const cfloat*>(a.data()); };
             return new Czt(ptr(pre), static_cast<int>(pre.shape(0)), ptr(kernel_fft),
                            static_cast<int>(kernel_fft.shape(0)), ptr(post_pos), ptr(post_neg),
                            static_cast<int>(post_pos.shape(0)));
           }), py::arg("pre"), py::arg("kernel_fft"), py::arg("post_pos"), py::arg("post_neg"))
      .def_property_readonly("window", [](const Czt& self) { return self.fixed().window(); })
      .def_property_readonly("fft_size", [](const Czt& self) { return self.fixed().fft_size(); })
      .def_property_readonly("n_out", [](const Czt& self) { return self.fixed().n_out(); })
      .def("run", [](Czt& self, const py::array& x, int64_t start, int64_t hop, py::array& out) {
             const streambin::ChirpZ& c = self.fixed();
             require<float>(x, 1, "ChirpZ.run(samples)", "(m,) float32");
             require<std::complex<float>>(out, 2, "ChirpZ.run(out)", "(k, n_out) complex64");
             const int64_t k = out.shape(0), m = x.shape(0);
             if (out.shape(1) != c.n_out())
               throw py::value_error("ChirpZ.run(out): expected (k, " + std::to_string(c.n_out()) +
                                     ") complex64, got " + shape_of(out));
             if (start < 0 || hop < 1)
               throw py::value_error("ChirpZ.run: expected start >= 0 and hop >= 1, got start=" +
                                     std::to_string(start) + " hop=" + std::to_string(hop));
             if (k > 0 && start + (k - 1) * hop + c.window() > m)
               throw py::value_error("ChirpZ.run(samples): " + std::to_string(k) + " windows of " +
                                     std::to_string(c.window()) + " samples from " + std::to_string(start) +
                                     " every " + std::to_string(hop) + " need m >= " +
                                     std::to_string(start + (k - 1) * hop + c.window()) + ", got " + shape_of(x));
             const float* src = static_cast<const float*>(x.data()) + start;
             cfloat* dst = reinterpret_cast<cfloat*>(out.mutable_data());
             self.run([&](streambin::ChirpZ& z) { z.run(src, k, hop, dst); });
           }, py::arg("samples"), py::arg("start"), py::arg("hop"), py::arg("out"),
           "out[t] = the chirp-z transform of samples[start + t*hop : start + t*hop + window], "
           "t < k = out.shape[0]: (m,) float32 in, (k, n_out) complex64 out.");
}

void init_mask(py::module_& m) {
  m.def("apply_mask", [](const py::array& spec, const py::array& mask, py::array& out, int mode) {
          // The mask may be a strided view (a slice of the model output): read in place.
          const MaskCall c = require_mask_call("apply_mask", spec, mask, out, mode, /*mask_strided=*/true);
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
          streambin::apply_mask(sp, c.k, c.n_bins, mp, c.n_masks, s, static_cast<streambin::MaskMode>(mode), op);
        }, py::arg("spec"), py::arg("mask"), py::arg("out"), py::arg("mode") = 0,
        "Complex-mask multiply into out (may be spec itself for one direct mask).");
}

void init_offline(py::module_& m) {
  m.def("stft_frames", [](const py::array& x, int n_fft, int win, int hop) {
          const StftParams p = make_params(n_fft, win, hop);
          const int64_t frames = require_stft_input("stft_frames", x, p);
          const int64_t batch = x.shape(0), n = x.shape(1);
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
          require_istft_input("istft_frames", spec, p);
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
  using StftCuda = Locked<sc::StreamingStftCuda>;
  using IstftCuda = Locked<sc::StreamingIstftCuda>;
  m.def("cuda_device_count", &sc::device_count, "CUDA devices visible (0 without a driver or GPU).");
  py::class_<StftCuda>(m, "StreamingStftCuda")
      .def(py::init([](int n_fft, int win, int hop, int64_t max_chunk, int device) {
             return new StftCuda(make_params(n_fft, win, hop), max_chunk, device);
           }), py::arg("n_fft"), py::arg("win_length"), py::arg("hop"), py::arg("max_chunk"), py::arg("device") = 0)
      .def("frames_for", [](StftCuda& self, int64_t n) {
             return self.run([n](const sc::StreamingStftCuda& s) { return s.frames_for(n); });
           }, py::arg("n"))
      .def("push_ptr", [](StftCuda& self, uintptr_t x, int64_t n, uintptr_t out, uintptr_t stream) {
             return self.run([&](sc::StreamingStftCuda& s) { return s.push_device(x, n, out, stream); });
           }, py::arg("x_ptr"), py::arg("n"), py::arg("out_ptr"), py::arg("stream") = 0,
           "Device pointers: n float32 in, frames_for(n) x n_bins complex64 out, enqueued on stream.")
      .def("push", [](StftCuda& self, const py::array& x) {
             require<float>(x, 1, "StreamingStftCuda.push(x)", "(n,) float32");
             const int64_t n = x.shape(0), max_chunk = self.fixed().max_chunk();
             if (n > max_chunk)
               throw py::value_error("StreamingStftCuda.push(x): expected (n,) float32 with n <= max_chunk=" +
                                     std::to_string(max_chunk) + ", got " + shape_of(x));
             const StftParams& p = self.fixed().params();
             py::array_t<std::complex<float>> out({max_frames_for(n, p.hop), int64_t(p.n_bins())});
             const float* src = static_cast<const float*>(x.data());
             cfloat* dst = reinterpret_cast<cfloat*>(out.mutable_data());
             const int64_t k = self.run([&](sc::StreamingStftCuda& s) { return s.push_host(src, n, dst); });
             return first_rows(out, k);
           }, py::arg("x"), "Push (n,) float32 host samples (n <= max_chunk); returns (k, n_bins) complex64.")
      .def("reset", [](StftCuda& self) { self.run([](sc::StreamingStftCuda& s) { s.reset(); }); });
  py::class_<IstftCuda>(m, "StreamingIstftCuda")
      .def(py::init([](int n_fft, int win, int hop, int channels, int64_t max_frames, int device) {
             return new IstftCuda(make_params(n_fft, win, hop), channels, max_frames, device);
           }), py::arg("n_fft"), py::arg("win_length"), py::arg("hop"), py::arg("channels"), py::arg("max_frames"),
           py::arg("device") = 0)
      .def("push_ptr", [](IstftCuda& self, uintptr_t frames, int64_t k, uintptr_t out, uintptr_t stream) {
             self.run([&](sc::StreamingIstftCuda& s) { s.push_device(frames, k, out, stream); });
           }, py::arg("frames_ptr"), py::arg("k"), py::arg("out_ptr"), py::arg("stream") = 0,
           "Device pointers: (channels, k, n_bins) complex64 in, (channels, k*hop) float32 out.")
      .def("push_into", [](IstftCuda& self, const py::array& frames, py::array& out) {
             const sc::StreamingIstftCuda& fixed = self.fixed();
             const int64_t k = require_synthesis_io("StreamingIstftCuda", frames, out, fixed.channels(), fixed.params());
             if (k > fixed.max_frames())
               throw py::value_error("StreamingIstftCuda.push(frames): " + std::to_string(k) +
                                     " frames exceed max_frames=" + std::to_string(fixed.max_frames()));
             const cfloat* src = reinterpret_cast<const cfloat*>(frames.data());
             float* dst = static_cast<float*>(out.mutable_data());
             self.run([&](sc::StreamingIstftCuda& s) { s.push_host(src, k, dst); });
           }, py::arg("frames"), py::arg("out"),
           "Host arrays: (channels, k <= max_frames, n_bins) complex64 in, (channels, k*hop) float32 out.")
      .def("reset", [](IstftCuda& self) { self.run([](sc::StreamingIstftCuda& s) { s.reset(); }); });
  m.def("apply_mask_ptr", [](uintptr_t spec, int64_t k, int64_t n_bins, uintptr_t mask, int64_t n_masks, int64_t sc_,
                             int64_t sp, int64_t sf, int64_t st, int mode, uintptr_t out, uintptr_t stream) {
          if (mode != 0 && mode != 1) throw py::value_error("apply_mask_ptr(mode): expected 0 (direct) or 1 (side)");
          if (k < 0 || n_bins < 1 || n_masks < 1)
            throw py::value_error("apply_mask_ptr: expected k >= 0, n_bins >= 1, n_masks >= 1, got k=" +
                                  std::to_string(k) + " n_bins=" + std::to_string(n_bins) +
                                  " n_masks=" + std::to_string(n_masks));
          py::gil_scoped_release release;
          sc::apply_mask_device(spec, k, n_bins, mask, n_masks, sc_, sp, sf, st, mode, out, stream);
        }, py::arg("spec_ptr"), py::arg("k"), py::arg("n_bins"), py::arg("mask_ptr"), py::arg("n_masks"),
        py::arg("stride_c"), py::arg("stride_part"), py::arg("stride_f"), py::arg("stride_t"), py::arg("mode"),
        py::arg("out_ptr"), py::arg("stream") = 0, "Mask multiply on device memory (element strides).");
  m.def("apply_mask_cuda", [](const py::array& spec, const py::array& mask, py::array& out, int mode, int device) {
          // The host path copies the mask as one block: it must be C-contiguous.
          const MaskCall c = require_mask_call("apply_mask_cuda", spec, mask, out, mode, /*mask_strided=*/false);
          const cfloat* sp = reinterpret_cast<const cfloat*>(spec.data());
          const float* mp = static_cast<const float*>(mask.data());
          cfloat* op = reinterpret_cast<cfloat*>(out.mutable_data());
          py::gil_scoped_release release;
          sc::apply_mask_host(sp, c.k, c.n_bins, mp, c.n_masks, mode, op, device);
        }, py::arg("spec"), py::arg("mask"), py::arg("out"), py::arg("mode") = 0, py::arg("device") = 0,
        "apply_mask on the GPU through host arrays (the mask C-contiguous).");
  m.def("stft_frames_cuda", [](const py::array& x, int n_fft, int win, int hop, int device) {
          const StftParams p = make_params(n_fft, win, hop);
          const int64_t frames = require_stft_input("stft_frames_cuda", x, p);
          const int64_t batch = x.shape(0), n = x.shape(1);
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
          require_istft_input("istft_frames_cuda", spec, p);
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
  m.doc() = "streambin native DSP core: streaming STFT/ISTFT, complex-mask multiply, chirp-z transform, offline transforms.";
#ifdef STREAMBIN_WITH_CUDA
  m.attr("built_with_cuda") = true;
#else
  m.attr("built_with_cuda") = false;
#endif
  init_params(m);
  init_streaming_stft(m);
  init_streaming_istft(m);
  init_chirp_z(m);
  init_mask(m);
  init_offline(m);
#ifdef STREAMBIN_WITH_CUDA
  init_cuda(m);
#endif
}
