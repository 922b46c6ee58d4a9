"""streambin: live mono audio + camera frames -> binaural audio, at low latency.

Public API (nothing else at top level)::

    import streambin
    sp = streambin.Spatializer(model="default", sample_rate=48000)
    out = sp.process(chunk, frame)      # (n,) float32 mono -> (2, n) float32
    out = streambin.spatialize(mono, rate, frames, fps=10)   # a whole clip -> (2, n), aligned
    bundle = streambin.load_bundle(path)

The names are imported lazily so that ``import streambin`` stays cheap and does not
pull in ONNX Runtime or torch until they are used.
"""

from streambin._version import __version__

__all__ = ["Spatializer", "spatialize", "load_bundle", "__version__"]


def __getattr__(name):
    if name == "Spatializer":
        from streambin.spatializer import Spatializer

        return Spatializer
    if name == "spatialize":
        from streambin.offline import spatialize

        return spatialize
    if name == "load_bundle":
        from streambin.bundle import load_bundle

        return load_bundle
    raise AttributeError(f"module 'streambin' has no attribute {name!r}")
