"""Command-line options that several streambin commands share (spatialize, the demo, evaluate)."""

from __future__ import annotations

import argparse

MIRROR_AVERAGE_HELP = ("average the output with the ear-swapped output for the mirrored picture (both networks "
                       "run twice; default: as the model bundle says, on for the shipped default)")
NO_MIRROR_AVERAGE_HELP = "run the networks once per block (less CPU; a picture without a side may lean a little)"


def add_mirror_average_options(parser: argparse.ArgumentParser, on_help: str = MIRROR_AVERAGE_HELP,
                               off_help: str = NO_MIRROR_AVERAGE_HELP) -> None:
    """``--mirror-average`` / ``--no-mirror-average`` -> ``args.mirror_average`` True / False,
    None when neither is given (the model's own setting; Spatializer(mirror_average=None))."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--mirror-average", dest="mirror_average", action="store_const", const=True, default=None,
                       help=on_help)
    group.add_argument("--no-mirror-average", dest="mirror_average", action="store_const", const=False,
                       help=off_help)
