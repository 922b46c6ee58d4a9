"""Add a side renderer (streambin.side_renderer) to a copy of a model bundle.

    python -m export.add_side_renderer --bundle streambin/models/default \\
        --localiser runs/objloc3/last.pt \\
        --fit docs/results/hrtf_prior_localiser3_soft_streamed_ood.json \\
        --out runs/bundle_renderer [--visual-int8 1]

What it writes into OUT (a copy of ``--bundle``):

- ``localiser.onnx``: the object localiser (``scripts/experiments/object_localiser.py train``)
  behind the ImageNet normalisation, uint8 RGB frames in, its six maps out; weights stored as
  float16 (computed in float32), checked against PyTorch.
- ``side_renderer.npz``: the antisymmetric half of the average head's mid-to-side filter
  (streambin.train.average_head) over the heads the fit drew, and the blend weights per bin.
- ``config.json``: a ``side_renderer`` section, with where each part came from.

``--fit`` is the JSON ``scripts/experiments/hrtf_prior.py --localiser CK --streamed BUNDLE --out``
writes: its heads, the power the peaks' scores are raised to and the blend weights of
``"localiser, soft"``, all fitted on train-pool clips (its ``--fit`` set) with the bundle's own
streamed output. It must have been run with this bundle and this localiser; the command it
records is checked for both.

``--weigh-peaks-by sounding`` weighs the peaks by the localiser's sounding map (a checkpoint
trained with ``object_localiser.py train --sounding-map``) instead of their heat.

``--replace-localiser`` (no ``--fit``) copies a bundle that already has a side renderer with only
its localiser graph replaced (and ``--weigh-peaks-by``), the filter table and blend weights kept:
refit the weights for the new localiser's peaks afterwards (``python -m
streambin.train.fit_side_blend --apply``).

``--visual-int8 N`` re-stores the visual graph's N largest weights as int8 (export.int8_weights)
to make room for the localiser under the bundle size budget, and reports how far the visual
feature moved.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from streambin.bundle import CONFIG_NAME, load_bundle, read_config, write_config
from streambin.side_renderer import WEIGH_PEAKS_BY

LOCALISER_GRAPH = "localiser.onnx"
TABLE_FILE = "side_renderer.npz"
OPSET = 17
TOL_MAPS = 1e-2          # float16 weights: the maps' max abs difference from PyTorch
FP16_MIN_ELEMENTS = (1024, 4096, 16384, 65536)  # weights this large or larger stored as float16, tried in turn
SOFT_VARIANT = "localiser, soft"


class ExportError(RuntimeError):
    pass


def read_fit(path: Path, n_bins: int) -> dict:
    """The heads, score power and blend weights from an hrtf_prior.py ``--out`` JSON."""
    try:
        fit = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ExportError(f"{path}: cannot read the fit's JSON ({e})") from None
    weights = fit.get("blend_weights", {}).get(SOFT_VARIANT)
    if not fit.get("heads") or "soft_power" not in fit or weights is None:
        raise ExportError(f"{path}: not an hrtf_prior.py --localiser result (needs 'heads', 'soft_power' and "
                          f"blend_weights[{SOFT_VARIANT!r}])")
    model, rendered = (np.asarray(weights[k], np.float32) for k in ("model", "rendered"))
    if model.shape != (n_bins,) or rendered.shape != (n_bins,):
        raise ExportError(f"{path}: blend weights must have {n_bins} bins, got {model.shape} and {rendered.shape}")
    return {"heads": list(fit["heads"]), "power": float(fit["soft_power"]), "w_model": model,
            "w_rendered": rendered, "command": fit.get("command", "")}


def check_fit_matches(command: str, bundle: Path, localiser: Path) -> None:
    """The fit must have streamed this bundle and weighed this localiser's peaks."""
    words = shlex.split(command)

    def arg(flag):
        return Path(words[words.index(flag) + 1]).resolve() if flag in words[:-1] else None

    if arg("--streamed") != bundle.resolve():
        raise ExportError(f"the fit streamed {arg('--streamed')}, not {bundle}: its blend weights belong to that "
                          "model's output (--skip-fit-check if it is the same bundle under another path)")
    if arg("--localiser") != localiser.resolve():
        raise ExportError(f"the fit used the localiser {arg('--localiser')}, not {localiser} (--skip-fit-check if "
                          "it is the same checkpoint under another path)")


def export_localiser(checkpoint: Path, path: Path, size_hw) -> float:
    """Write the localiser graph (uint8 frames in, maps out, weights of at least the first size in
    :data:`FP16_MIN_ELEMENTS` that keeps the maps within :data:`TOL_MAPS` stored as float16);
    returns the maps' max abs difference from PyTorch on probe frames."""
    import onnx
    import onnxruntime as ort
    import torch

    from export import fp16_graph
    from export.to_onnx import _torch_export
    from streambin.nets.generator import IMAGENET_MEAN, IMAGENET_STD
    from streambin.nets.localiser import load_localiser

    net = load_localiser(str(checkpoint))

    class Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

        def forward(self, frames):  # (B, H, W, 3) uint8 RGB
            x = frames.permute(0, 3, 1, 2).float() / 255.0
            return self.net((x - self.mean) / self.std)

    graph = Graph().eval()
    rng = np.random.default_rng(0)
    probe = rng.integers(0, 256, (3, size_hw[0], size_hw[1], 3), dtype=np.uint8)
    probe[0] = 128
    _torch_export(graph, (torch.from_numpy(probe[:1]),), path, ["frames"], ["maps"], OPSET)
    full = onnx.load(str(path))
    with torch.no_grad():
        want = graph(torch.from_numpy(probe)).numpy()
    # A deep trunk (many layers, each adding its weights' rounding) can miss the tolerance with
    # every weight in float16: keep the smaller tensors (depthwise kernels, the first layers;
    # little of the file) in float32 until it holds.
    for min_elements in FP16_MIN_ELEMENTS:
        model = onnx.ModelProto()
        model.CopyFrom(full)
        fp16_graph.store_weights_fp16(model, min_elements)
        onnx.save(model, str(path))
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"frames": probe})[0]
        err = float(np.abs(got - want).max())
        if err <= TOL_MAPS:
            break
    return err


def shrink_visual(path: Path, count: int, reference: Path, frame_shape) -> dict:
    """Re-store ``count`` weights of the visual graph at ``path`` as int8; returns what moved:
    the names and the features' max abs difference from ``reference`` (the graph before)."""
    import onnx
    import onnxruntime as ort

    from export.int8_weights import store_weights_int8

    model = onnx.load(str(path))
    names = store_weights_int8(model, count)
    onnx.save(model, str(path))
    rng = np.random.default_rng(1)
    probe = rng.integers(0, 256, (4,) + tuple(frame_shape), dtype=np.uint8)
    probe[0] = 128
    run = {p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"frames": probe})[0]
           for p in (path, reference)}
    diff = float(np.abs(run[path] - run[reference]).max())
    return {"int8_weights": names, "max_abs_feature_change": diff,
            "feature_abs_max": float(np.abs(run[reference]).max())}


def _check_weigh_peaks_by(localiser: Path, weigh_peaks_by: str) -> None:
    from streambin.nets.localiser import load_localiser

    if weigh_peaks_by not in WEIGH_PEAKS_BY:
        raise ExportError(f"weigh_peaks_by must be one of {WEIGH_PEAKS_BY}, got {weigh_peaks_by!r}")
    if weigh_peaks_by == "sounding" and not load_localiser(str(localiser)).sounding_map:
        raise ExportError(f"{localiser}: weighing the peaks by the sounding map needs a localiser trained with one "
                          "(object_localiser.py train --sounding-map)")


def _fresh_copy(src: Path, out_dir: Path, force: bool) -> None:
    if out_dir.exists():
        if not force:
            raise ExportError(f"{out_dir} exists (pass --force to replace it)")
        shutil.rmtree(out_dir)
    shutil.copytree(src, out_dir)


def replace_localiser(bundle_dir: Path, localiser: Path, out_dir: Path, weigh_peaks_by: str = "heat",
                      force: bool = False) -> dict:
    """A copy of ``bundle_dir`` (which has a side renderer) at ``out_dir`` with its localiser graph
    replaced by ``localiser``'s and its peaks weighed by ``weigh_peaks_by``; the filter table
    and blend weights unchanged. Returns the config's new section."""
    from streambin.side_renderer import SideRenderer

    bundle = load_bundle(bundle_dir)
    if bundle.side_renderer is None:
        raise ExportError(f"{bundle_dir}: the bundle has no side renderer to replace the localiser of "
                          "(add one with --fit)")
    _check_weigh_peaks_by(Path(localiser), weigh_peaks_by)
    out_dir = Path(out_dir)
    _fresh_copy(bundle.path, out_dir, force)
    try:
        cfg = read_config(out_dir)
        section = cfg["side_renderer"]
        size_hw = (int(section["input"]["height"]), int(section["input"]["width"]))
        maps_err = export_localiser(Path(localiser), out_dir / section["graph"], size_hw)
        if not maps_err <= TOL_MAPS:
            raise ExportError(f"the localiser graph differs from PyTorch by {maps_err:g} (> {TOL_MAPS:g})")
        section["weigh_peaks_by"] = weigh_peaks_by
        section["source"] = {**section.get("source", {}), "localiser": str(localiser), "max_abs_err_maps": maps_err,
                             "localiser_replaced_in": str(bundle_dir)}
        write_config(out_dir, cfg)
        SideRenderer.of_bundle(load_bundle(out_dir))
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)  # never leave a half-written bundle behind
        raise
    return section


def add_side_renderer(bundle_dir: Path, localiser: Path, fit_json: Path, out_dir: Path, visual_int8: int = 0,
                      input_hw=(96, 192), peaks: int = 4, hfov_deg: float = 90.0, force: bool = False,
                      check_fit: bool = True, weigh_peaks_by: str = "heat") -> dict:
    """Write ``out_dir`` (see the module docstring); returns the config's new section."""
    from streambin.side_renderer import SideRenderer
    from streambin.train.average_head import antisymmetric_half, side_filter_table

    bundle = load_bundle(bundle_dir)
    if bundle.mask_kind != "side":
        raise ExportError(f"{bundle_dir}: a side renderer needs a side-mask model, this one is {bundle.mask_kind!r}")
    if bundle.sample_rate != 16000 or bundle.n_fft != 512:
        raise ExportError(f"{bundle_dir}: the filter table is built at 16 kHz with 512-point FFTs, the bundle has "
                          f"{bundle.sample_rate} Hz and {bundle.n_fft}")
    fit = read_fit(fit_json, bundle.n_bins)
    if check_fit:
        check_fit_matches(fit["command"], Path(bundle_dir), Path(localiser))
    _check_weigh_peaks_by(Path(localiser), weigh_peaks_by)
    out_dir = Path(out_dir)
    _fresh_copy(bundle.path, out_dir, force)
    try:
        grid, table = antisymmetric_half(*side_filter_table(fit["heads"]))
        np.savez(out_dir / TABLE_FILE, azimuths_deg=grid.astype(np.float32), filters=table.astype(np.complex64),
                 blend_model=fit["w_model"], blend_rendered=fit["w_rendered"])
        maps_err = export_localiser(Path(localiser), out_dir / LOCALISER_GRAPH, input_hw)
        if not maps_err <= TOL_MAPS:
            raise ExportError(f"the localiser graph differs from PyTorch by {maps_err:g} (> {TOL_MAPS:g})")
        cfg = read_config(out_dir)
        if visual_int8:
            cfg.setdefault("export", {})["visual_int8"] = shrink_visual(
                out_dir / cfg["graphs"]["visual"], visual_int8, bundle.graphs["visual"], bundle.frame_shape)
        section = {"graph": LOCALISER_GRAPH, "table": TABLE_FILE,
                   "input": {"height": int(input_hw[0]), "width": int(input_hw[1])},
                   "peaks": int(peaks), "power": fit["power"], "hfov_deg": float(hfov_deg),
                   "weigh_peaks_by": weigh_peaks_by,
                   "source": {"localiser": str(localiser), "fit": str(fit_json), "heads": len(fit["heads"]),
                              "table_step_deg": float(grid[1] - grid[0]), "max_abs_err_maps": maps_err}}
        cfg["side_renderer"] = section
        write_config(out_dir, cfg)
        loaded = load_bundle(out_dir)          # the whole bundle validates and the renderer opens
        SideRenderer.of_bundle(loaded)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)  # never leave a half-written bundle behind
        raise
    return section


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True, help="the model bundle to copy (its mask kind must be 'side')")
    p.add_argument("--localiser", required=True, help="an object_localiser.py train checkpoint")
    p.add_argument("--fit", type=Path,
                   help="hrtf_prior.py --localiser CK --streamed BUNDLE --out JSON (heads, power, blend weights); "
                        "required unless --replace-localiser")
    p.add_argument("--replace-localiser", action="store_true",
                   help="--bundle has a side renderer: replace only its localiser graph (table and weights kept)")
    p.add_argument("--weigh-peaks-by", choices=WEIGH_PEAKS_BY, default="heat",
                   help="weigh the peaks by their heat or by the localiser's sounding map (default heat)")
    p.add_argument("--out", required=True, type=Path, help="the new bundle directory")
    p.add_argument("--visual-int8", type=int, default=0, metavar="N",
                   help="store the visual graph's N largest weights as int8 (default 0: none)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--skip-fit-check", action="store_true",
                   help="do not compare the fit's recorded --streamed/--localiser paths with these (paths recorded "
                        "relative to another directory)")
    args = p.parse_args(argv)
    if args.replace_localiser == (args.fit is not None):
        p.error("give --fit (a new side renderer) or --replace-localiser (a new localiser in one), not both")
    if args.replace_localiser and args.visual_int8:
        p.error("--visual-int8 goes with --fit (a new side renderer)")
    try:
        if args.replace_localiser:
            section = replace_localiser(Path(args.bundle), Path(args.localiser), args.out,
                                        weigh_peaks_by=args.weigh_peaks_by, force=args.force)
        else:
            section = add_side_renderer(Path(args.bundle), Path(args.localiser), args.fit, args.out,
                                        visual_int8=args.visual_int8, force=args.force,
                                        check_fit=not args.skip_fit_check, weigh_peaks_by=args.weigh_peaks_by)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = json.loads((args.out / CONFIG_NAME).read_text())
    size = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    print(json.dumps({"side_renderer": section, "export": cfg.get("export", {}).get("visual_int8")}, indent=1))
    print(f"wrote {args.out} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
