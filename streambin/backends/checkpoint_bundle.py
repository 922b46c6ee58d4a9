"""A Bundle view of a training checkpoint, so the torch backend can run it without an export."""

from __future__ import annotations

from pathlib import Path


def bundle_from_checkpoint(path):
    """Describe checkpoint ``path`` as a :class:`streambin.bundle.Bundle` (no ONNX graphs;
    ``weights`` is the checkpoint itself). Needs torch and streambin.train. Raises BundleError
    (a ValueError) when the file is not a training checkpoint."""
    from streambin.bundle import Bundle, BundleError, make_config
    from streambin.train.checkpoint import CheckpointError, load_generator

    path = Path(path).expanduser().resolve()
    try:
        model, cfg = load_generator(str(path))
    except CheckpointError as exc:  # a ValueError like every other bad model argument
        raise BundleError(f"model {path} is not a streambin training checkpoint: {exc}") from exc
    a = cfg.audio
    h, w = cfg.model.visual_size
    config = make_config(sample_rate=a.sample_rate, n_fft=a.n_fft, win_length=a.win_length, hop=a.hop,
                         context_frames=a.context_frames, input_rms=a.input_rms, rms_floor=a.rms_floor,
                         mask_kind=model.mask_kind, visual_size=(h, w), feature_shape=model.feature_shape,
                         recipe=cfg.recipe, arch=cfg.model.arch, model=cfg.to_dict()["model"])
    return Bundle(path=path, config=config, sample_rate=a.sample_rate, n_fft=a.n_fft, win_length=a.win_length,
                  hop=a.hop, window=config["window"], context_frames=a.context_frames, input_rms=a.input_rms,
                  rms_floor=a.rms_floor, mask_kind=model.mask_kind, n_masks=config["n_masks"], visual_size=(h, w),
                  feature_shape=tuple(model.feature_shape), recipe=cfg.recipe, arch=cfg.model.arch, graphs={},
                  weights=path)
