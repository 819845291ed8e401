"""SeFa: closed-form factorization of latent semantics (Shen & Zhou, CVPR 2021).

The paper's "Unsupervised Semantic Factorization": a generator's first operation on a latent is
affine, y = A w + b, so moving w by alpha n moves y by alpha A n; the unit directions that change
y the most solve n* = argmax_{|n| = 1} |A n|^2, and (with a Lagrange multiplier) the k best are the
eigenvectors of A^T A with the k largest eigenvalues. No sampling, no training: the directions come
from the weights alone.

For StyleGAN, as in the official code (genforce/sefa `factorize_weight`), A stacks the style
affines (the "A" boxes of StyleGAN Fig. 1) of the chosen layers, one style input each (the
StyleGAN2 ToRGBs that share a w with a conv are left out; the last w, read by the final ToRGB
alone, is that ToRGB's), and every row (one output channel's weights) is scaled to unit length
first. rosinality's `closed_form_factorization.py` is the same without the row normalisation
(`normalize=False`).

Only the scales (W's standard deviation along each direction, so that strengths mean the same for
every method, see `synth.directions`) are measured from samples of W.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .directions import (Directions, Progress, Provenance, canonical_signs, network_sha256, one_blas_thread,
                         std_along, utc_now, w_moments)

SCALE_SAMPLES = 10_000     # W samples for the scales (the projector's W statistics use as many)


def style_affines(synthesis: torch.nn.Module) -> list[list[tuple[str, torch.nn.Module]]]:
    """For each style input i of the synthesis network, the (kind, layer) pairs of the style
    affines that read ws[:, i]: kind 'conv' (StyleGAN2 modulated conv, v1 AdaIN, StyleGAN3 layer),
    'torgb', or 'input' (StyleGAN3's ws[:, 0]: the affine of its Fourier features' rotation and
    translation, the only affine that w feeds). Works for StyleGAN2 (`models.stylegan2`), v1 and the
    progressive StyleGAN2 (`models.stylegan1`) and StyleGAN3 (`models.stylegan3`)."""
    per: list[list[tuple[str, torch.nn.Module]]] = [[] for _ in range(synthesis.num_ws)]
    if hasattr(synthesis, "layer_names"):  # StyleGAN3: ws[0] -> the input, ws[1 + i] -> layer i (the last: ToRGB)
        per[0].append(("input", synthesis.input.affine))
        for i, layer in enumerate(synthesis.layers()):
            per[1 + i].append(("torgb" if layer.is_torgb else "conv", layer.affine))
        return per
    blocks = synthesis.blocks()
    w_idx = 0
    for b, block in enumerate(blocks):
        if hasattr(block, "epilogue0"):  # StyleGAN v1: AdaIN after each of the two layers
            for j, epi in enumerate((block.epilogue0, block.epilogue1)):
                if epi.affine is not None:
                    per[w_idx + j].append(("conv", epi.affine))
        else:
            convs = [c for c in (getattr(block, "conv0", None), block.conv1) if c is not None]
            for j, conv in enumerate(convs):
                per[w_idx + j].append(("conv", conv.affine))
            torgb = getattr(block, "torgb", None)
            # StyleGAN2: a block's ToRGB reads the w after its convs; the progressive network
            # renders only the last block's ToRGB at full resolution, with the last w.
            reads_w = getattr(block, "num_torgb", 0) > 0 if hasattr(block, "num_torgb") else b == len(blocks) - 1
            if torgb is not None and reads_w:
                per[w_idx + block.num_conv].append(("torgb", torgb.affine))
        w_idx += block.num_conv
    return per


def affine_weights(G, layers: Sequence[int]) -> list[np.ndarray]:
    """The effective style-affine weights (weight * weight_gain) [out, w_dim] float64 for the
    chosen style inputs, one per input as in the official code: its conv's affine(s), or its
    ToRGB's when no conv reads that w (or StyleGAN3's input affine, for its first w)."""
    per = style_affines(G.synthesis)
    out = []
    for i in layers:
        if not 0 <= i < len(per):
            raise ValueError(f"style index {i} out of range 0..{len(per) - 1}")
        convs = [m for kind, m in per[i] if kind == "conv"]
        for m in convs or [m for kind, m in per[i] if kind != "conv"]:  # a w read by a ToRGB or the input alone
            out.append((m.weight.detach().to(torch.float64) * m.weight_gain).cpu().numpy())
    if not out:
        raise ValueError(f"no style affines read the style inputs {list(layers)} (a network without styles?)")
    return out


def factorize(weights: Sequence[np.ndarray], normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The closed form: A = the stacked weights [sum out, D] (rows unit length with `normalize`) ->
    (eigenvectors of A^T A as rows [D, D], eigenvalues [D]), largest eigenvalue first. Each
    vector's sign is fixed so that its largest-magnitude entry is positive (eigenvectors have none)."""
    A = np.concatenate([np.asarray(w, np.float64) for w in weights], axis=0)  # [sum out, D]
    if normalize:
        A = A / np.linalg.norm(A, axis=1, keepdims=True).clip(min=1e-30)
    with one_blas_thread():
        values, vectors = np.linalg.eigh(A.T @ A)  # ascending, columns
    order = np.argsort(-values, kind="stable")
    vectors, values = vectors[:, order].T, values[order]  # rows [D, D]
    return canonical_signs(vectors), values


def sefa_directions(G, layers: Sequence[int] | None = None, *, num: int | None = None, normalize: bool = True,
                    scale_samples: int = SCALE_SAMPLES, seed: int = 0, network: str | Path = "",
                    progress: Progress | None = None) -> Directions:
    """SeFa directions of G for the style inputs `layers` (default all), the `num` strongest (default
    all w_dim), to be applied to the same style inputs; scales from `scale_samples` W samples."""
    layers = tuple(range(G.num_ws)) if layers is None else tuple(sorted(set(int(i) for i in layers)))
    vectors, values = factorize(affine_weights(G, layers), normalize)
    k = vectors.shape[0] if num is None else max(1, min(int(num), vectors.shape[0]))
    vectors, values = vectors[:k], values[:k]
    moments = w_moments(G, scale_samples, seed=seed, progress=progress)
    prov = Provenance("sefa", network_sha256(G), int(moments.n), utc_now(), Path(network).name if network else "",
                      {"layers": list(layers), "normalize": normalize, "seed": seed})
    return Directions(vectors.astype(np.float32), std_along(moments, vectors).astype(np.float32), values,
                      "eigenvalue", layers, G.num_ws, prov)


__all__ = ["SCALE_SAMPLES", "style_affines", "affine_weights", "factorize", "sefa_directions"]
