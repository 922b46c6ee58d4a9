"""What the export tools put out besides the graphs: the finished directory moved into place
(:func:`replace_dir`), the package versions recorded in config.json (:func:`versions`) and the
CLIs' log messages on stderr (:func:`setup_logging`).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Dict


def setup_logging(verbose: bool = False) -> None:
    """Log 'streambin' messages to stderr (INFO, or DEBUG when verbose) for the CLIs."""
    logger = logging.getLogger("streambin")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def versions() -> Dict[str, str]:
    """Versions of the packages that produced a bundle (absent ones are left out)."""
    from streambin import __version__

    out = {"streambin": __version__}
    for mod in ("torch", "onnx", "onnxruntime"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


def replace_dir(src: Path, dst: Path) -> None:
    """Move the finished directory ``src`` to ``dst``, replacing an existing ``dst`` with the
    smallest possible window (rename old away, rename new in, delete old)."""
    src, dst = Path(src), Path(dst)
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(dst, old)
    try:
        os.replace(src, dst)
    except BaseException:
        if old is not None:
            os.replace(old, dst)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
