"""Shared pytest fixtures: devices the DSP tests run on, deterministic RNG."""

import numpy as np
import pytest

from streambin import dsp


def dsp_devices():
    """'cpu' always; 'cuda' when the extension was built with CUDA and a GPU is visible."""
    devices = ["cpu"]
    cuda = pytest.param("cuda", marks=pytest.mark.skipif(
        dsp.cuda_device_count() == 0,
        reason="no CUDA GPU visible (streambin._C built_with_cuda=%s)" % dsp.has_cuda()))
    return devices + [cuda]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
