"""A Bundle view of a training checkpoint, so the torch backend can run it without an export."""

from __future__ import annotations

from pathlib import Path

# The stored config's audio entries a bundle needs (Config.to_dict()["audio"] holds them all).
_AUDIO_KEYS = ("sample_rate", "n_fft", "win_length", "hop", "context_frames", "input_rms", "rms_floor")


def bundle_from_checkpoint(path):
    """Describe checkpoint ``path`` as a :class:`streambin.bundle.Bundle` (no ONNX graphs;
    ``weights`` is the checkpoint itself). Needs torch (streambin.nets reads the checkpoint; the
    training package is not used). Raises BundleError (a ValueError) when the file is not a
    training checkpoint."""
    from streambin.bundle import Bundle, BundleError, make_config
    from streambin.nets.weights import CheckpointError, load_generator_weights

    path = Path(path).expanduser().resolve()
    try:
        model, stored = load_generator_weights(str(path))
    except CheckpointError as exc:  # a ValueError like every other bad model argument
        raise BundleError(f"model {path} is not a streambin training checkpoint: {exc}") from exc
    audio = stored.get("audio")
    missing = [f"audio.{k}" for k in _AUDIO_KEYS if not isinstance(audio, dict) or k not in audio]
    missing += [] if "recipe" in stored else ["recipe"]
    if missing:
        raise BundleError(f"model {path}: the stored config lacks {missing}")
    h, w = model.visual_size
    config = make_config(**{k: audio[k] for k in _AUDIO_KEYS}, mask_kind=model.mask_kind, visual_size=(h, w),
                         feature_shape=model.feature_shape, recipe=stored["recipe"], arch=model.arch,
                         model=stored["model"])
    return Bundle(path=path, config=config, **{k: config[k] for k in _AUDIO_KEYS}, window=config["window"],
                  output_frames=config["context_frames"],  # the torch model's whole-context masks
                  mask_kind=model.mask_kind, n_masks=config["n_masks"], visual_size=(h, w),
                  feature_shape=tuple(model.feature_shape), recipe=config["recipe"], arch=config["arch"],
                  graphs={}, weights=path)
