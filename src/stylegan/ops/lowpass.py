"""Windowed-sinc low-pass filters for alias-free resampling (StyleGAN3, Karras et al. 2021, Sec. 3.2).

StyleGAN3 treats every feature map as samples of a continuous, band-limited signal. Each synthesis
layer upsamples before its nonlinearity and low-pass filters + downsamples after it; the filters
are windowed sincs (paper Sec. 3.2, "Filtered nonlinearities", "Flexible layer specifications"):

- `design_lowpass_filter(radial=False)`: the separable 1-D filter, a sinc of cutoff f_c multiplied
  by a Kaiser window whose beta follows Kaiser's formulas for the transition band 2 f_h (the same
  filter as `scipy.signal.firwin(numtaps, cutoff, width=2 f_h, fs)`, normalised to unit DC gain).
- `design_lowpass_filter(radial=True)`: the radially symmetric 2-D filter of config R (Sec. 3.2,
  "Rotation equivariance"):
  the jinc J_1(2 pi f_c r) / (pi r) under the outer product of the same Kaiser window.

Everything is computed in float64 numpy (the window, the sinc, Kaiser's attenuation / beta
formulas) and returned as float32 tensors; no scipy. J_1 comes from `torch.special.bessel_j1` in
float64. tests/test_stylegan3_ops.py checks the taps against scipy where it is installed.
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["kaiser_window", "kaiser_atten", "kaiser_beta", "windowed_sinc", "radial_lowpass",
           "design_lowpass_filter"]


def kaiser_window(numtaps: int, beta: float) -> np.ndarray:
    """Symmetric Kaiser window w[n] = I0(beta sqrt(1 - (2n/(M-1) - 1)^2)) / I0(beta), n < M. [M] float64."""
    if numtaps < 1:
        raise ValueError(f"numtaps must be >= 1, got {numtaps}")
    if numtaps == 1:
        return np.ones(1)
    t = 2.0 * np.arange(numtaps) / (numtaps - 1) - 1.0  # [-1, 1]
    return np.i0(beta * np.sqrt(np.clip(1.0 - t * t, 0.0, None))) / np.i0(beta)


def kaiser_atten(numtaps: int, width: float) -> float:
    """Stopband attenuation A (dB) of a Kaiser FIR filter of `numtaps` taps whose transition band is
    `width` (a fraction of the Nyquist frequency): A = 2.285 (M - 1) pi width + 7.95 (Kaiser 1974)."""
    return 2.285 * (numtaps - 1) * math.pi * width + 7.95


def kaiser_beta(atten: float) -> float:
    """Kaiser's empirical window parameter for a stopband attenuation `atten` in dB."""
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def windowed_sinc(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray:
    """Separable Kaiser-windowed sinc low-pass: cutoff and transition `width` in Hz at sampling rate `fs`.

    h[n] = sinc(2 (f_c / fs) (n - (M-1)/2)) * kaiser[n], scaled to sum 1 (unit DC gain). [M] float64.
    """
    nyq = fs / 2
    if not 0 < cutoff < nyq:
        raise ValueError(f"cutoff {cutoff} must lie strictly between 0 and fs/2 = {nyq}")
    beta = kaiser_beta(kaiser_atten(numtaps, width / nyq))
    m = np.arange(numtaps) - (numtaps - 1) / 2
    h = np.sinc((cutoff / nyq) * m) * kaiser_window(numtaps, beta)  # the factor f_c/nyq cancels below
    return h / h.sum()


def radial_lowpass(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray:
    """Radially symmetric (jinc) low-pass of config R: [M, M] float64, sum 1.

    f(r) = J_1(2 pi f_c r) / (pi r) with r the distance from the centre in units of 1/fs, times the
    separable Kaiser window (same beta as the 1-D design); f(0) = f_c (the limit).
    """
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))  # [M, M]
    arg = torch.from_numpy(2 * cutoff * np.pi * r)
    j1 = torch.special.bessel_j1(arg).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(r > 0, j1 / (np.pi * r), cutoff)
    beta = kaiser_beta(kaiser_atten(numtaps, width / (fs / 2)))
    w = kaiser_window(numtaps, beta)
    f = f * np.outer(w, w)
    return f / f.sum()


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float,
                          radial: bool = False) -> torch.Tensor | None:
    """A StyleGAN3 layer's up- or downsampling filter, as the official `design_lowpass_filter`.

    numtaps 1 -> None (identity: no filtering); otherwise the separable windowed sinc [numtaps] or,
    with `radial`, the jinc filter [numtaps, numtaps]; float32.
    """
    if numtaps < 1:
        raise ValueError(f"numtaps must be >= 1, got {numtaps}")
    if numtaps == 1:
        return None
    f = radial_lowpass(numtaps, cutoff, width, fs) if radial else windowed_sinc(numtaps, cutoff, width, fs)
    return torch.as_tensor(f, dtype=torch.float32)
