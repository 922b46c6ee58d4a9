"""Command-line options that several streambin commands share (spatialize, the demo, evaluate)."""

from __future__ import annotations

import argparse

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
