"""Objective metrics for binaural (left/right) audio, as the visually-guided binauralization
literature reports them, plus a few extra ones. numpy/scipy only: importable without torch.

Every metric has the signature ``f(pred, target, sample_rate=16000, **options) -> float`` where
``pred`` and ``target`` are float arrays of shape ``(2, n)`` (row 0 = left, row 1 = right), the
same ``n``, at ``sample_rate`` Hz.

Peak normalisation (option ``normalize``)
    The papers' evaluation scripts (2.5D-Visual-Sound, Sep-Stereo, PseudoBinaural, run with
    ``--normalization``) divide the prediction and the ground truth *each by its own* peak
    ``max |x|`` over both channels (with a 1e-20 floor) before scoring. Every function here takes
    ``normalize`` with exactly that meaning; the default is ``True`` for all of them
    (:data:`NORMALIZE_DEFAULT`), so that STFT and envelope distances are comparable with the
    published numbers and all metrics of one report are computed on the same signals.
    The level-difference metrics (:func:`spl_distance`, :func:`direction_accuracy`) are invariant
    to a gain common to both channels, so the option does not change them; it is accepted for
    uniformity.

STFT padding (option ``pad_mode`` of :func:`stft_distance`)
    The papers' scripts ran librosa < 0.9, whose centred STFT pads the clip edges by reflection;
    the default here is the same (:data:`PAD_MODE_DEFAULT` = 'reflect'), with which
    :func:`stft_distance` equals the peers' evaluate.py to 1e-7. 'constant' (zeros, librosa >= 0.9)
    differs by 0.1-0.3%. :func:`mrstft_distance` (not a papers' metric) pads with zeros.

Direction of each metric: distances (``stft_distance``, ``envelope_distance``, ``wave_l2``,
``mrstft_distance``, ``spl_distance``) are lower-is-better; ``snr`` (dB) and
``direction_accuracy`` (fraction) are higher-is-better (see :data:`HIGHER_IS_BETTER`).
"""

from __future__ import annotations

import numpy as np
import scipy.signal

__all__ = [
    "stft_distance",
    "envelope_distance",
    "wave_l2",
    "mrstft_distance",
    "snr",
    "spl_distance",
    "direction_accuracy",
    "peak_normalize",
    "stft",
    "METRICS",
    "HIGHER_IS_BETTER",
    "NORMALIZE_DEFAULT",
    "PAD_MODE_DEFAULT",
]

NORMALIZE_DEFAULT = True
# STFT edge padding of the papers' metric: their evaluate.py ran librosa < 0.9, whose centred STFT
# pads with reflect (librosa 0.9 switched to zeros).
PAD_MODE_DEFAULT = "reflect"
_PEAK_FLOOR = 1e-20  # the papers' normalise(): x / max(1e-20, max|x|)

# (n_fft, hop, win_length) of the multi-resolution STFT distance (the common set used by
# Parallel WaveGAN-style multi-resolution STFT losses, scaled to 16 kHz speech/music).
MRSTFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))


# --------------------------------------------------------------------------- helpers


def _check_pair(pred, target):
    """Validate and return ``(pred, target)`` as float64 arrays of shape (2, n)."""
    arrays = []
    for name, x in (("pred", pred), ("target", target)):
        a = np.asarray(x)
        if a.ndim != 2 or a.shape[0] != 2:
            raise ValueError(
                f"{name} must have shape (2, n) (left, right), got shape {a.shape}"
            )
        if a.shape[1] < 1:
            raise ValueError(f"{name} must have shape (2, n) with n >= 1, got {a.shape}")
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(
                f"{name} must be a float array of shape (2, n), got dtype {a.dtype}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be finite (no NaN/inf), shape (2, n) float")
        arrays.append(a.astype(np.float64, copy=False))
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(
            f"pred and target must have the same shape (2, n), got {arrays[0].shape} "
            f"and {arrays[1].shape}"
        )
    return arrays[0], arrays[1]


def _check_rate(sample_rate):
    if not (np.isscalar(sample_rate) and float(sample_rate) > 0):
        raise ValueError(f"sample_rate must be a positive number (Hz), got {sample_rate!r}")
    return float(sample_rate)


def peak_normalize(x):
    """The papers' ``normalize``: ``x / max(1e-20, max |x|)`` with the peak over all channels.

    x: array of any shape (here (2, n)); returns float64 of the same shape.
    """
    x = np.asarray(x, dtype=np.float64)
    return x / max(_PEAK_FLOOR, float(np.max(np.abs(x))) if x.size else 0.0)


def _prepare(pred, target, normalize):
    pred, target = _check_pair(pred, target)
    if normalize:
        pred, target = peak_normalize(pred), peak_normalize(target)
    return pred, target


def stft(x, n_fft=512, hop=160, win_length=400, pad_mode=PAD_MODE_DEFAULT):
    """STFT of a 1-D signal the way librosa computes it with ``center=True``.

    x: (n,) float. The periodic Hann window of ``win_length`` samples
    (``scipy.signal.get_window('hann', win_length, fftbins=True)``) is zero-padded, centred, to
    ``n_fft``; the signal is padded by ``n_fft // 2`` on both sides with ``pad_mode``
    ('reflect', the default = librosa < 0.9, which the published numbers used; 'constant' =
    zeros, librosa >= 0.9's default); frame t starts at ``t * hop`` of the padded signal.
    Returns complex128 (n_fft // 2 + 1, 1 + n // hop).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size < 1:
        raise ValueError(f"stft input must have shape (n,) with n >= 1, got {x.shape}")
    if not (0 < win_length <= n_fft) or hop < 1:
        raise ValueError(
            f"need 0 < win_length <= n_fft and hop >= 1, got n_fft={n_fft}, hop={hop}, "
            f"win_length={win_length}"
        )
    if pad_mode not in ("constant", "reflect"):
        raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
    window = scipy.signal.get_window("hann", win_length, fftbins=True)
    left = (n_fft - win_length) // 2
    window = np.pad(window, (left, n_fft - win_length - left))
    padded = np.pad(x, n_fft // 2, mode=pad_mode)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    return np.fft.rfft(frames * window, n=n_fft, axis=-1).T


# --------------------------------------------------------------------------- literature metrics


def stft_distance(pred, target, sample_rate=16000, normalize=NORMALIZE_DEFAULT,
                  pad_mode=PAD_MODE_DEFAULT, n_fft=512, hop=160, win_length=400):
    """STFT distance of the literature (Mono2Binaural, Sep-Stereo, PseudoBinaural, ...).

    For each channel c, ``S_c = stack(real(STFT), imag(STFT))`` of shape (2, 257, T) (n_fft
    512, hop 160, win 400 periodic Hann, ``center=True``), and

        d = sum_{c in (L, R)} mean_{(2, 257, T)} (S_c(pred) - S_c(target))^2

    i.e. squared error (not RMS), averaged over real/imag, bins and frames, summed over the two
    channels. The STFT parameters are in samples, as the papers use them at 16 kHz;
    ``sample_rate`` is accepted for the common signature and not used.

    pad_mode: 'reflect' (default; librosa < 0.9, with which the published FAIR-Play numbers were
        computed: the peers' evaluate.py gives the same value to 1e-7) or 'constant' (zero
        padding, what librosa >= 0.9 does for ``center=True``; 0.1-0.3% different).
    normalize: peak-normalise each signal first (the papers' ``--normalization``; default True).
    pred, target: (2, n) float. Returns float >= 0.
    """
    _check_rate(sample_rate)
    pred, target = _prepare(pred, target, normalize)
    total = 0.0
    for c in range(2):
        diff = stft(pred[c], n_fft, hop, win_length, pad_mode) - stft(
            target[c], n_fft, hop, win_length, pad_mode
        )
        # mean over the stacked (real, imag) tensor = sum |diff|^2 / (2 * bins * frames)
        total += float(np.sum(diff.real ** 2 + diff.imag ** 2)) / (2 * diff.size)
    return total


def envelope_distance(pred, target, sample_rate=16000, normalize=NORMALIZE_DEFAULT):
    """Envelope (ENV) distance of the literature.

        d = sum_{c in (L, R)} sqrt( mean_t ( |hilbert(G_c)|(t) - |hilbert(P_c)|(t) )^2 )

    with ``scipy.signal.hilbert`` (analytic signal) over the whole clip. ``sample_rate`` is not
    used. normalize: peak-normalise each signal first (papers' default; default True).
    pred, target: (2, n) float. Returns float >= 0.
    """
    _check_rate(sample_rate)
    pred, target = _prepare(pred, target, normalize)
    env_p = np.abs(scipy.signal.hilbert(pred, axis=-1))
    env_t = np.abs(scipy.signal.hilbert(target, axis=-1))
    return float(np.sum(np.sqrt(np.mean((env_t - env_p) ** 2, axis=-1))))


def wave_l2(pred, target, sample_rate=16000, normalize=NORMALIZE_DEFAULT):
    """Waveform L2: mean squared error over both channels and all samples,
    ``mean_{c, t} (pred[c, t] - target[c, t])^2``. normalize: as the other metrics
    (default True). pred, target: (2, n) float. Returns float >= 0.
    """
    _check_rate(sample_rate)
    pred, target = _prepare(pred, target, normalize)
    return float(np.mean((pred - target) ** 2))


def mrstft_distance(pred, target, sample_rate=16000, normalize=NORMALIZE_DEFAULT,
                    resolutions=MRSTFT_RESOLUTIONS, eps=1e-7):
    """Multi-resolution STFT distance.

    For each resolution (n_fft, hop, win) in ``resolutions`` (default (512, 128, 512),
    (1024, 256, 1024), (2048, 512, 2048), Hann, centred with zero padding) and each channel,
    with magnitudes |P|, |G| of shape (bins, T):

        sc     = ||  |G| - |P|  ||_F / max(|| |G| ||_F, eps)        (spectral convergence)
        logmag = mean | log(max(|G|, eps)) - log(max(|P|, eps)) |    (log-magnitude L1)

    and the distance is ``mean over resolutions and channels of (sc + logmag)``.
    normalize: as the other metrics (default True). pred, target: (2, n) float.
    Returns float >= 0.
    """
    _check_rate(sample_rate)
    pred, target = _prepare(pred, target, normalize)
    if len(resolutions) == 0:
        raise ValueError("resolutions must list at least one (n_fft, hop, win_length)")
    terms = []
    for n_fft, hop, win in resolutions:
        for c in range(2):
            mp = np.abs(stft(pred[c], n_fft, hop, win, pad_mode="constant"))
            mg = np.abs(stft(target[c], n_fft, hop, win, pad_mode="constant"))
            sc = np.linalg.norm(mg - mp) / max(np.linalg.norm(mg), eps)
            logmag = np.mean(np.abs(np.log(np.maximum(mg, eps)) - np.log(np.maximum(mp, eps))))
            terms.append(sc + logmag)
    return float(np.mean(terms))


def snr(pred, target, sample_rate=16000, normalize=NORMALIZE_DEFAULT):
    """Signal-to-noise ratio in dB over both channels (PseudoBinaural's definition):

        snr = 10 * log10( sum_{c,t} target^2 / sum_{c,t} (target - pred)^2 )

    Higher is better. Returns ``inf`` when pred == target exactly (zero error) and ``-inf``
    when the target is all zeros but the error is not. normalize: as the other metrics
    (default True). pred, target: (2, n) float.
    """
    _check_rate(sample_rate)
    pred, target = _prepare(pred, target, normalize)
    signal = float(np.sum(target ** 2))
    noise = float(np.sum((target - pred) ** 2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return float(10.0 * np.log10(signal / noise))


# --------------------------------------------------------------------------- level differences


def _frame_levels_db(x, sample_rate, frame_s, hop_s, floor_db):
    """Per-frame broadband level of each channel in dB re full scale.

    x: (2, n). Frames of round(frame_s * sample_rate) samples every round(hop_s * sample_rate)
    samples, full frames only (a clip shorter than one frame is one frame).
    Level = 20 log10(max(rms, 10^(floor_db/20))). Returns (2, n_frames) float64.
    """
    frame = max(1, int(round(frame_s * sample_rate)))
    hop = max(1, int(round(hop_s * sample_rate)))
    if x.shape[1] <= frame:
        frames = x[:, None, :]
    else:
        frames = np.lib.stride_tricks.sliding_window_view(x, frame, axis=-1)[:, ::hop]
    rms = np.sqrt(np.mean(frames ** 2, axis=-1))
    return 20.0 * np.log10(np.maximum(rms, 10.0 ** (floor_db / 20.0)))


def _ild_and_active(pred, target, sample_rate, frame_s, hop_s, silence_db, floor_db):
    if frame_s <= 0 or hop_s <= 0:
        raise ValueError(f"frame_s and hop_s must be > 0 seconds, got {frame_s}, {hop_s}")
    lp = _frame_levels_db(pred, sample_rate, frame_s, hop_s, floor_db)
    lt = _frame_levels_db(target, sample_rate, frame_s, hop_s, floor_db)
    ild_p = lp[0] - lp[1]
    ild_t = lt[0] - lt[1]
    # A frame counts when the target's louder channel is within silence_db of the target's
    # loudest frame and above the absolute floor (else its level difference is noise).
    loud_t = lt.max(axis=0)
    active = (loud_t >= loud_t.max() + silence_db) & (loud_t > floor_db)
    return ild_p, ild_t, active


def spl_distance(pred, target, sample_rate=16000, normalize=NORMALIZE_DEFAULT,
                 frame_s=0.1, hop_s=0.1, silence_db=-60.0, floor_db=-120.0):
    """Sound-pressure-level (SPL) distance, after SAGM (Li, Zhao & Yuan).

    SAGM measures spatial perception per time step by the level difference between the two
    ears, whose sign gives the direction (which side is louder) and whose size the strength.
    SAGM has no public code; our exact definition:

        SPL_c(t) = 20 log10(max(rms(x_c over frame t), 10^(floor_db/20)))   [dB re full scale]
        ILD(t)   = SPL_L(t) - SPL_R(t)                 (> 0: left louder, < 0: right louder)
        d        = mean_{t active} | ILD_pred(t) - ILD_target(t) |          [dB]

    with frames of ``frame_s`` seconds every ``hop_s`` seconds (default 0.1 s, non-overlapping,
    full frames only). A frame is active when the target's louder channel is no more than
    ``-silence_db`` dB below the target's loudest frame (and above ``floor_db``). Returns
    ``nan`` when no frame is active (silent target). Lower is better. ``normalize`` does not
    change the result (a common gain cancels in ILD); accepted for the common signature.
    pred, target: (2, n) float at ``sample_rate``.
    """
    sample_rate = _check_rate(sample_rate)
    pred, target = _prepare(pred, target, normalize)
    ild_p, ild_t, active = _ild_and_active(
        pred, target, sample_rate, frame_s, hop_s, silence_db, floor_db
    )
    if not np.any(active):
        return float("nan")
    return float(np.mean(np.abs(ild_p[active] - ild_t[active])))


def direction_accuracy(pred, target, sample_rate=16000, normalize=NORMALIZE_DEFAULT,
                       frame_s=0.1, hop_s=0.1, ild_threshold_db=1.0, silence_db=-60.0,
                       floor_db=-120.0):
    """Fraction of time steps where the prediction puts the sound on the correct side.

    With the per-frame level difference ``ILD(t) = SPL_L(t) - SPL_R(t)`` of
    :func:`spl_distance` (same frames, same activity rule), the frames counted are the active
    ones whose target is clearly lateral, ``|ILD_target(t)| >= ild_threshold_db`` (default
    1 dB); a frame is correct when ``sign(ILD_pred(t)) == sign(ILD_target(t))`` (a prediction
    with ILD exactly 0, e.g. mono, is never correct). Returns a fraction in [0, 1], or ``nan``
    when no frame is counted. Higher is better.
    pred, target: (2, n) float at ``sample_rate``.
    """
    sample_rate = _check_rate(sample_rate)
    if ild_threshold_db < 0:
        raise ValueError(f"ild_threshold_db must be >= 0 dB, got {ild_threshold_db}")
    pred, target = _prepare(pred, target, normalize)
    ild_p, ild_t, active = _ild_and_active(
        pred, target, sample_rate, frame_s, hop_s, silence_db, floor_db
    )
    counted = active & (np.abs(ild_t) >= ild_threshold_db) & (ild_t != 0)
    if not np.any(counted):
        return float("nan")
    return float(np.mean(np.sign(ild_p[counted]) == np.sign(ild_t[counted])))


# name -> function, in report order
METRICS = {
    "stft": stft_distance,
    "env": envelope_distance,
    "wave_l2": wave_l2,
    "mrstft": mrstft_distance,
    "snr": snr,
    "spl": spl_distance,
    "direction_acc": direction_accuracy,
}
HIGHER_IS_BETTER = {"snr", "direction_acc"}
