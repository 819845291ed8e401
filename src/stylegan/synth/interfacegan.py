"""Directions from labels: InterFaceGAN's linear boundaries (Shen, Gu, Tang and Zhou, CVPR 2020).

The paper's model: when a binary attribute is linearly separable in the latent space, a
hyperplane with unit normal n separates it, and moving a latent along n (w + alpha n) changes the
attribute while leaving what is independent of it alone. To find n: label many generated samples
with a classifier, keep the most confident ones (its code: 2% at each end of the scores), and fit a
linear SVM on (latent, label); its normal is the direction. We fit in W (StyleGAN Sec. 4.2: W is
the space where attributes are linearly separable) with the linear-separability metric's own fit
(`metrics.separability.fit_linear_svm`, the most confident samples by |logit| as there).

Labels come from:
- the classes of a conditional network (`class_samples`): w of random classes, label "is class k";
  one direction per class asked for (class k against the others);
- a classifier of images (`classifier_samples`, `load_classifier('module:function')`):
  function(img float [N, C, H, W] in [-1, 1]) -> logits [N] or [N, A]; logit > 0 is "present",
  |logit| the confidence; one direction per attribute;
- a CSV of (seed, label) made by hand (`read_label_csv`, `seed_samples`): w of each seed
  (untruncated), label 1/0 (true/false, yes/no; other numbers: > 0.5 is present).
"""
from __future__ import annotations

import csv
import importlib
import importlib.util
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..metrics.separability import fit_linear_svm, most_confident
from .directions import (Directions, DirectionError, Progress, Provenance, drawn_classes, merge_moments, moments_of,
                         network_sha256, std_along, utc_now, w_batches)
from .sample import class_labels, z_from_seeds

DEFAULT_SAMPLES = 20_000
DEFAULT_KEEP = 0.5         # the separability metric keeps the most confident half

Classifier = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True, eq=False)
class LabelledSamples:
    """ws [N, w_dim] float64, labels [N, A] bool (A attributes), confidence [N, A] (|logit|) or
    None when every label is certain (classes, a CSV); names [A]."""

    ws: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray | None
    names: tuple[str, ...]
    source: str  # 'classes' | 'classifier' | 'csv'


def boundary(ws: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float]:
    """The unit normal [D] of a linear SVM separating ws [N, D] by labels [N] (pointing to
    the labelled side) and the SVM's accuracy on these samples."""
    labels = np.asarray(labels, bool)
    present = int(labels.sum())
    if present == 0 or present == labels.size:
        raise DirectionError(f"the attribute is {'absent from' if present == 0 else 'present in'} all {labels.size} "
                             f"samples used: a boundary needs both (more samples, or another attribute)")
    svm = fit_linear_svm(ws, labels, seed)
    coef = np.asarray(svm.coef_, np.float64).reshape(-1)
    norm = float(np.linalg.norm(coef))
    if not np.isfinite(norm) or norm == 0:
        raise DirectionError("the linear SVM found no boundary (all-zero normal)")
    return coef / norm, float(svm.score(np.asarray(ws, np.float64), labels))


def class_samples(G, num_samples: int = DEFAULT_SAMPLES, classes: Sequence[int] | None = None, *,
                  seed: int = 0, batch: int = 4096, device=None) -> LabelledSamples:
    """A conditional network's W samples of random classes, labelled "is class k" for each k of
    `classes` (default all)."""
    if G.c_dim == 0:
        raise DirectionError("directions from classes need a conditional network; this one has no classes")
    classes = list(range(G.c_dim)) if classes is None else [int(k) for k in classes]
    bad = [k for k in classes if not 0 <= k < G.c_dim]
    if bad:
        raise DirectionError(f"classes {bad} out of range 0..{G.c_dim - 1}")
    drawn = drawn_classes(G, num_samples, seed)  # the classes w_batches draws
    ws = np.concatenate(list(w_batches(G, num_samples, seed=seed, batch=batch, device=device)))
    labels = drawn[:, None] == np.asarray(classes)[None]
    return LabelledSamples(ws, labels, None, tuple(f"class {k}" for k in classes), "classes")


def classifier_samples(G, classifier: Classifier, num_samples: int = DEFAULT_SAMPLES, *, seed: int = 0,
                       batch: int = 64, class_idx: int | None = None, noise_mode: str = "const", device=None,
                       progress: Progress | None = None) -> LabelledSamples:
    """W samples rendered and labelled by `classifier(img [B, C, H, W] in [-1, 1]) -> logits [B]
    or [B, A]`: label logit > 0, confidence |logit|."""
    dev = torch.device(device) if device is not None else next(G.parameters()).device
    ws_all, logits_all, done = [], [], 0
    for w in w_batches(G, num_samples, seed=seed, batch=batch, class_idx=class_idx, device=dev):
        wt = torch.from_numpy(w).to(dev, torch.float32)[:, None].repeat(1, G.num_ws, 1)
        with torch.no_grad():
            img = G.synthesis(wt, noise_mode=noise_mode)
            logits = torch.as_tensor(classifier(img))
        if logits.ndim == 1:
            logits = logits[:, None]
        if logits.ndim != 2 or logits.shape[0] != w.shape[0]:
            raise DirectionError(f"the classifier must return logits [N] or [N, A] for N images, got "
                                 f"{tuple(logits.shape)} for {w.shape[0]}")
        ws_all.append(w)
        logits_all.append(logits.detach().to(torch.float64).cpu().numpy())
        done += w.shape[0]
        if progress is not None and progress(done, num_samples) is False:
            break
    logits = np.concatenate(logits_all)
    if not np.isfinite(logits).all():
        raise DirectionError("the classifier returned non-finite logits")
    names = tuple(f"attribute {a}" for a in range(logits.shape[1]))
    return LabelledSamples(np.concatenate(ws_all), logits > 0, np.abs(logits), names, "classifier")


def seed_samples(G, seeds: Sequence[int], labels: Sequence[bool], *, class_idx: int | None = None,
                 device=None) -> LabelledSamples:
    """The untruncated w of each seed (official z convention) with its label (a CSV made by hand)."""
    if len(seeds) != len(labels):
        raise ValueError(f"{len(seeds)} seeds but {len(labels)} labels")
    dev = torch.device(device) if device is not None else next(G.parameters()).device
    z = z_from_seeds(seeds, G.z_dim, dev)
    with torch.no_grad():
        ws = G.mapping(z, class_labels(G, len(seeds), class_idx, dev))[:, 0].to(torch.float64).cpu().numpy()
    return LabelledSamples(ws, np.asarray(labels, bool)[:, None], None, ("label",), "csv")


_TRUE, _FALSE = {"1", "true", "yes", "y", "+"}, {"0", "false", "no", "n", "-"}


def parse_label(text: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    value = float(t)  # ValueError for anything else
    if not np.isfinite(value):
        raise ValueError(text)
    return value > 0.5


def read_label_csv(text: str, source: str = "the CSV") -> tuple[list[int], list[bool]]:
    """Rows 'seed,label' (a header line is skipped; blank lines and '#' comments too) -> (seeds,
    labels). Errors name the line."""
    seeds, labels = [], []
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].strip().startswith("#"):
            continue
        if len(row) < 2:
            raise DirectionError(f"{source}, line {n}: expected 'seed,label', got {','.join(row)!r}")
        try:
            seed = int(row[0].strip())
            label = parse_label(row[1])
        except ValueError:
            if n == 1 and not seeds:
                continue  # a header
            raise DirectionError(f"{source}, line {n}: expected an integer seed and a label (0/1, true/false or a "
                                 f"number), got {','.join(row)!r}") from None
        if not 0 <= seed < 2 ** 32:
            raise DirectionError(f"{source}, line {n}: seed {seed} out of range 0..2^32-1")
        seeds.append(seed)
        labels.append(label)
    if not seeds:
        raise DirectionError(f"{source} holds no (seed, label) rows")
    return seeds, labels


def load_classifier(spec: str) -> Classifier:
    """'package.module:function' or 'path/to/file.py:function' -> the function (imported, so it
    runs the user's code, as a classifier must)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise DirectionError(f"--classifier must be module:function or file.py:function, got {spec!r}")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise DirectionError(f"classifier file not found: {path}")
            mod_spec = importlib.util.spec_from_file_location(f"_stylegan_classifier_{path.stem}", path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[mod_spec.name] = module
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as e:
        raise DirectionError(f"cannot import the classifier module {module_name!r}: {e}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise DirectionError(f"{module_name} has no function {attr!r}")
    return fn


def labels_directions(G, samples: LabelledSamples, *, keep: float = DEFAULT_KEEP, seed: int = 0,
                      layers: Sequence[int] | None = None, network: str = "", params: dict | None = None
                      ) -> Directions:
    """One boundary normal per attribute of `samples`. With confidences, each attribute's fit uses
    its `keep` most confident fraction; the scale is W's standard deviation along the normal over
    all samples; the value is the SVM's accuracy on the samples it was fitted to."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be a fraction in (0, 1], got {keep}")
    ws = samples.ws
    moments = merge_moments(None, moments_of(ws))
    vectors, accuracies = [], []
    for a, name in enumerate(samples.names):
        idx = np.arange(ws.shape[0])
        if samples.confidence is not None:
            idx = most_confident(samples.confidence[:, a], max(2, int(round(keep * ws.shape[0]))))
        try:
            normal, accuracy = boundary(ws[idx], samples.labels[idx, a], seed)
        except DirectionError as e:
            raise DirectionError(f"{name}: {e}") from None
        vectors.append(normal)
        accuracies.append(accuracy)
    vectors = np.stack(vectors)
    layers = tuple(range(G.num_ws)) if layers is None else tuple(sorted(set(int(i) for i in layers)))
    prov = Provenance("labels", network_sha256(G), int(ws.shape[0]), utc_now(), Path(network).name if network else "",
                      {"source": samples.source, "keep": keep if samples.confidence is not None else 1.0,
                       "seed": seed, **(params or {})})
    return Directions(vectors.astype(np.float32), std_along(moments, vectors).clip(min=1e-12).astype(np.float32),
                      np.asarray(accuracies), "boundary accuracy", layers, G.num_ws, prov, samples.names)


__all__ = ["DEFAULT_SAMPLES", "DEFAULT_KEEP", "Classifier", "LabelledSamples", "boundary", "class_samples",
           "classifier_samples", "seed_samples", "parse_label", "read_label_csv", "load_classifier",
           "labels_directions"]
