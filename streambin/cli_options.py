"""Command-line options that several streambin commands share (spatialize, the demo, evaluate)."""

from __future__ import annotations

import argparse

from streambin.camera import check_hfov_deg
from streambin.signal_contract import MAX_SIDE_GAIN, check_side_gain

MIRROR_AVERAGE_HELP = ("average the output with the ear-swapped output for the mirrored picture (both networks "
                       "run twice; default: as the model bundle says, on for the shipped default)")
NO_MIRROR_AVERAGE_HELP = "run the networks once per block (less CPU; a picture without a side may lean a little)"
SIDE_GAIN_HELP = (f"scale what the output adds to one ear and takes from the other, in [0, {MAX_SIDE_GAIN:g}] (1: the "
                  "model's own output, 0: mono, above 1: wider; default: as the model bundle says)")


def add_mirror_average_options(parser: argparse.ArgumentParser, on_help: str = MIRROR_AVERAGE_HELP,
                               off_help: str = NO_MIRROR_AVERAGE_HELP) -> None:
    """``--mirror-average`` / ``--no-mirror-average`` -> ``args.mirror_average`` True / False,
    None when neither is given (the model's own setting; Spatializer(mirror_average=None))."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--mirror-average", dest="mirror_average", action="store_const", const=True, default=None,
                       help=on_help)
    group.add_argument("--no-mirror-average", dest="mirror_average", action="store_const", const=False,
                       help=off_help)


def side_gain_arg(text: str) -> float:
    """argparse type of ``--side-gain``: a number in [0, MAX_SIDE_GAIN]."""
    try:
        return check_side_gain(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_side_gain_option(parser: argparse.ArgumentParser, help: str = SIDE_GAIN_HELP) -> None:
    """``--side-gain G`` -> ``args.side_gain`` (None when not given: the model's own setting;
    Spatializer(side_gain=None))."""
    parser.add_argument("--side-gain", type=side_gain_arg, default=None, metavar="G", help=help)


NO_SIDE_RENDERER_HELP = ("leave out the model bundle's side renderer (the side an average head renders at the "
                         "objects a localiser finds in the picture, blended with the model's): the model alone")


def add_side_renderer_option(parser: argparse.ArgumentParser, help: str = NO_SIDE_RENDERER_HELP) -> None:
    """``--no-side-renderer`` -> ``args.side_renderer`` False (None when not given: as the model
    bundle says; Spatializer(side_renderer=None))."""
    parser.add_argument("--no-side-renderer", dest="side_renderer", action="store_const", const=False,
                        default=None, help=help)


CAMERA_HFOV_HELP = ("the camera's horizontal field of view in degrees, in (0, 180), if you know it (laptop webcams "
                    "are often 60-80; a data sheet's diagonal 78 is 70 at 16:9, see streambin.camera."
                    "hfov_from_diagonal): the side renderer turns where it finds objects into directions through it "
                    "(default: as the model bundle says, 90 for the shipped default)")
PER_CLIP = "clip"   # --camera-hfov clip: each evaluated clip's own field of view, from its meta


def camera_hfov_arg(text: str, per_clip: bool = False):
    """argparse type of ``--camera-hfov``: degrees in (0, 180); with ``per_clip`` also "clip"."""
    if per_clip and text == PER_CLIP:
        return PER_CLIP
    try:
        return check_hfov_deg(float(text), "--camera-hfov")
    except ValueError:
        raise argparse.ArgumentTypeError("must be the camera's horizontal field of view in degrees, a number in "
                                         f"(0, 180){' or ' + repr(PER_CLIP) if per_clip else ''}, got {text!r}") from None


def add_camera_hfov_option(parser: argparse.ArgumentParser, help: str = CAMERA_HFOV_HELP,
                           per_clip: bool = False) -> None:
    """``--camera-hfov DEG`` -> ``args.camera_hfov`` (None when not given: the bundle's;
    Spatializer(camera_hfov_deg=None)); ``per_clip`` also accepts "clip" (evaluations: each
    clip's own view)."""
    parser.add_argument("--camera-hfov", type=lambda text: camera_hfov_arg(text, per_clip), default=None,
                        metavar="DEG" + ("|clip" if per_clip else ""), help=help)
