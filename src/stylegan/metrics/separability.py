"""Linear separability (StyleGAN Sec. 4.2 and Appendix).

Generate N images with their latents z and w; label every image with A binary attribute
classifiers; per attribute keep the most confident half, fit a linear SVM (sklearn LinearSVC) that
predicts the label from the latent, X = the SVM's side of its hyperplane, and measure the
conditional entropy H(Y|X). Score = exp(sum over attributes of H(Y|X)), separately for z and w
(lower = more linearly separable; 1 is perfect). With entropies in nats this equals the official
code's 2^(sum of entropies in bits). The official run uses 200k images, keeps 100k, and the 40
CelebA-HQ attribute classifiers; here the classifiers are user supplied:

- a TorchScript file: `net(img) -> logits [N, A]` (or [N]) for img float [N, C, H, W] in [-1, 1]
  (<= 256 px; larger generator outputs are box-downsampled to 256 first, as the official code);
  logit > 0 means the attribute is present (official: softmax([logit, -logit]));
- or our own small CNN trained on a labelled dataset with `train_attribute_classifier` and saved
  as safetensors with its JSON config in the metadata (`save_attribute_classifier`).
Confidence of a prediction = |logit| (monotone in the softmax probability used officially).
"""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stylegan.metrics.errors import DetectorError, MetricError
from stylegan.metrics.features import (
    MetricOptions,
    progress_bar,
    batches,
    eval_mode,
    gather_rows,
    make_label_sampler,
    module_device,
    rank_indices,
    sample_latents,
)
from stylegan.metrics.ppl import downsample_to
from stylegan.nn import weight_cache

PathLike = Union[str, "os.PathLike[str]"]
CLASSIFIER_FORMAT = "stylegan-attribute-classifier"


# ----------------------------------------------------------------------------------------------
# Separability from latents and classifier outputs


def conditional_entropy(y: np.ndarray, x: np.ndarray) -> float:
    """H(Y | X) in nats for binary arrays y (labels) and x (SVM predictions) of equal length,
    from their empirical 2x2 joint distribution."""
    y = np.asarray(y).astype(bool)
    x = np.asarray(x).astype(bool)
    n = y.size
    if n == 0 or x.size != n:
        raise MetricError(f"conditional_entropy: need equal non-empty arrays, got {y.size} and {x.size}.")
    h = 0.0
    for xv in (False, True):
        px = np.mean(x == xv)
        if px == 0:
            continue
        for yv in (False, True):
            pxy = np.mean((x == xv) & (y == yv))
            if pxy > 0:
                h -= pxy * math.log(pxy / px)
    return max(h, 0.0)


def most_confident(logits: np.ndarray, num_keep: int) -> np.ndarray:
    """Indices of the `num_keep` samples with the largest |logit| (logits [N]), most confident first."""
    return np.argsort(-np.abs(np.asarray(logits)), kind="stable")[:num_keep]


def fit_linear_svm(x: np.ndarray, y: np.ndarray, seed: int = 0):
    """The separability metric's linear classifier: a LinearSVC fitted to x [N, D] -> y bool [N]
    (float64, convergence warnings silenced as officially). Also the attribute boundary of latent
    editing (stylegan.synth.interfacegan). Both classes must occur in y."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    svm = LinearSVC(random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        svm.fit(np.asarray(x, np.float64), np.asarray(y, bool))
    return svm


def attribute_entropy(latents: np.ndarray, logits: np.ndarray, num_keep: int, seed: int = 0) -> float:
    """H(Y|X) for one attribute: keep the `num_keep` most confident samples (|logit|), fit a
    LinearSVC latents -> (logit > 0), X = its predictions. latents [N, D], logits [N]."""
    order = most_confident(logits, num_keep)
    x_in = np.asarray(latents[order], np.float64)
    y = np.asarray(logits[order]) > 0
    if y.all() or not y.any():
        return 0.0  # one class only: Y is constant, H(Y|X) = 0 (official: "assume perfect prediction")
    svm = fit_linear_svm(x_in, y, seed)
    return conditional_entropy(y, svm.predict(x_in))


def separability_score(latents: np.ndarray, logits: np.ndarray, num_keep: Optional[int] = None, seed: int = 0) -> float:
    """exp(sum_a H(Y_a | X_a)). latents [N, D], logits [N, A] (or [N]); num_keep default N // 2."""
    latents = np.asarray(latents)
    logits = np.asarray(logits)
    if logits.ndim == 1:
        logits = logits[:, None]
    if latents.ndim != 2 or logits.ndim != 2 or latents.shape[0] != logits.shape[0]:
        raise MetricError(f"Separability: latents [N, D] and logits [N, A] expected, got {latents.shape}, {logits.shape}.")
    keep = latents.shape[0] // 2 if num_keep is None else min(num_keep, latents.shape[0])
    total = sum(attribute_entropy(latents, logits[:, a], keep, seed) for a in range(logits.shape[1]))
    return float(math.exp(total))


# ----------------------------------------------------------------------------------------------
# Our attribute classifier


@dataclass(frozen=True)
class ClassifierConfig:
    """Small CNN attribute classifier: input resized to `resolution`, one logit per attribute."""

    resolution: int = 64
    in_channels: int = 3
    num_attributes: int = 1
    width: int = 32
    max_width: int = 256
    attribute_names: tuple = ()


class AttributeClassifier(nn.Module):
    """img float [N, C, H, W] in [-1, 1] -> logits [N, A]. 3x3 conv stem, stride-2 3x3 convs down to
    4x4 (channels doubling up to max_width), linear head."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        if cfg.resolution < 8 or cfg.resolution & (cfg.resolution - 1):
            raise MetricError(f"Classifier resolution must be a power of two >= 8, got {cfg.resolution}.")
        self.cfg = cfg
        layers: list = [nn.Conv2d(cfg.in_channels, cfg.width, 3, padding=1), nn.LeakyReLU(0.2)]
        ch, res = cfg.width, cfg.resolution
        while res > 4:
            nxt = min(ch * 2, cfg.max_width)
            layers += [nn.Conv2d(ch, nxt, 3, stride=2, padding=1), nn.BatchNorm2d(nxt), nn.LeakyReLU(0.2)]
            ch, res = nxt, res // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch * 16, cfg.num_attributes)

    def prepare(self, img: torch.Tensor) -> torch.Tensor:
        """Resize to the classifier resolution and match channels. [N, C, H, W] -> [N, C', R, R]."""
        x = img.to(torch.float32)
        if x.shape[1] != self.cfg.in_channels:
            if x.shape[1] == 1:
                x = x.repeat(1, self.cfg.in_channels, 1, 1)
            elif self.cfg.in_channels == 1:
                x = x.mean(dim=1, keepdim=True)
            else:
                raise MetricError(f"Classifier expects {self.cfg.in_channels} channels, got {x.shape[1]}.")
        r = self.cfg.resolution
        if x.shape[-2:] != (r, r):
            mode = "area" if x.shape[-1] > r else "bilinear"
            x = F.interpolate(x, size=(r, r), mode=mode, **({} if mode == "area" else dict(align_corners=False)))
        return x

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.prepare(img)).flatten(1))


def save_attribute_classifier(model: AttributeClassifier, path: PathLike, extra: Optional[dict] = None) -> Path:
    """Save as safetensors; the config (and `extra`, e.g. validation accuracy) as JSON metadata."""
    from safetensors.torch import save_file

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    cfg = asdict(model.cfg)
    cfg["attribute_names"] = list(cfg["attribute_names"])
    meta = {"format": CLASSIFIER_FORMAT, "config": json.dumps(cfg), "extra": json.dumps(extra or {})}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = p.with_name(p.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, p)
    return p


def load_attribute_classifier(path: PathLike, device: Union[str, torch.device] = "cpu") -> nn.Module:
    """Our safetensors classifier, or a TorchScript module (img [-1, 1] -> logits)."""
    p = Path(path)
    if not p.is_file():
        raise DetectorError(
            f"Attribute classifier {p} not found. Train one with `stylegan metrics --train-classifier --data D --out {p}` "
            "or give a TorchScript classifier (img in [-1, 1] -> logits [N, A])."
        )
    with open(p, "rb") as f:
        is_zip = f.read(2) == b"PK"  # TorchScript archives are zip files; safetensors start with a length
    if not is_zip:
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
        except Exception as e:
            raise DetectorError(f"Cannot read classifier {p} as safetensors or TorchScript: {e}") from e
        if meta.get("format") != CLASSIFIER_FORMAT:
            raise DetectorError(f"{p} is a safetensors file but not an attribute classifier saved by stylegan.")
        cfg_dict = json.loads(meta["config"])
        cfg_dict["attribute_names"] = tuple(cfg_dict.get("attribute_names", ()))
        model = AttributeClassifier(ClassifierConfig(**cfg_dict))
        model.load_state_dict(load_file(str(p)))
        return model.eval().requires_grad_(False).to(device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(p), map_location="cpu")
    except Exception as e:
        raise DetectorError(f"{p} is neither our safetensors classifier nor a TorchScript file: {e}") from e
    return module.eval().to(device)


@dataclass
class TrainReport:
    """Result of `train_attribute_classifier`."""

    model: AttributeClassifier
    train_accuracy: list = field(default_factory=list)  # per attribute, last epoch
    val_accuracy: list = field(default_factory=list)  # per attribute, held-out split
    path: Optional[Path] = None


def _dataset_arrays(dataset, indices: Sequence[int]) -> tuple:
    imgs, labels = [], []
    for i in indices:
        img, lab = dataset[int(i)]
        imgs.append(np.asarray(img))
        labels.append(np.asarray(lab, dtype=np.float32))
    return np.stack(imgs), np.stack(labels)


def train_attribute_classifier(
    dataset,
    out: Optional[PathLike] = None,
    *,
    resolution: int = 64,
    width: int = 32,
    epochs: int = 10,
    batch: int = 64,
    lr: float = 1e-3,
    val_fraction: float = 0.1,
    max_items: Optional[int] = None,
    attribute_names: Sequence[str] = (),
    device: Union[str, torch.device] = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> TrainReport:
    """Train a small CNN to predict each label dimension (target = label > 0.5) of a labelled
    dataset (items `(uint8 [C, H, W], float32 [label_dim])`) with binary cross-entropy and Adam,
    random x-flips as augmentation; report train/held-out accuracy; save to `out` if given."""
    label_dim = int(getattr(dataset, "label_dim", 0) or 0)
    n = len(dataset)
    if label_dim == 0:
        raise MetricError("The dataset has no labels; open it with labels (dataset.json) to train an attribute classifier.")
    if n < 4:
        raise MetricError(f"Need at least 4 labelled images to train a classifier, got {n}.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)[: (max_items or n)]
    n_val = max(1, int(round(len(order) * val_fraction)))
    val_idx, train_idx = order[:n_val], order[n_val:]
    x_train, y_train = _dataset_arrays(dataset, train_idx)
    x_val, y_val = _dataset_arrays(dataset, val_idx)
    channels = x_train.shape[1]
    torch.manual_seed(seed)
    dev = torch.device(device)
    cfg = ClassifierConfig(resolution=resolution, in_channels=channels, num_attributes=label_dim, width=width,
                           attribute_names=tuple(attribute_names))
    model = AttributeClassifier(cfg).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def as_input(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).to(dev, torch.float32) / 127.5 - 1.0

    train_acc: list = []
    for _epoch in progress_bar(range(epochs), progress, "classifier epochs"):
        model.train()
        perm = rng.permutation(len(train_idx))
        correct = np.zeros(label_dim)
        for idx in batches(perm, batch):
            x = as_input(x_train[idx])
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5).to(dev)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            y = torch.from_numpy(y_train[idx] > 0.5).to(dev, torch.float32)
            logits = model(x)
            loss = F.binary_cross_entropy_with_logits(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            correct += ((logits.detach() > 0) == (y > 0.5)).float().sum(0).cpu().numpy()
        train_acc = (correct / max(len(train_idx), 1)).tolist()
    model.eval().requires_grad_(False)
    with torch.no_grad():
        pred = torch.cat([model(as_input(x_val[idx])) for idx in batches(np.arange(len(val_idx)), batch)]).cpu().numpy()
    val_acc = ((pred > 0) == (y_val > 0.5)).mean(axis=0).tolist()
    report = TrainReport(model=model, train_accuracy=train_acc, val_accuracy=val_acc)
    if out is not None:
        report.path = save_attribute_classifier(model, out, extra=dict(val_accuracy=val_acc, train_items=len(train_idx)))
    return report


# ----------------------------------------------------------------------------------------------
# The metric


def resolve_classifier(opts: MetricOptions, device: torch.device) -> Any:
    clf = opts.classifier
    if clf is None:
        raise MetricError(
            "Linear separability needs attribute classifiers: pass --classifier PATH (TorchScript, or one trained with "
            "`stylegan metrics --train-classifier --data D --out PATH`)."
        )
    if isinstance(clf, (str, os.PathLike)):
        return load_attribute_classifier(clf, device)
    return clf


def compute_ls(opts: MetricOptions, num_samples: int = 200000, num_keep: Optional[int] = None) -> dict:
    """{'z': score, 'w': score} for opts.G with opts.classifier (NaNs on ranks other than 0)."""
    G = opts.G
    if G is None:
        raise MetricError("No generator given.")
    keep = num_samples // 2 if num_keep is None else num_keep
    classifier = resolve_classifier(opts, opts.device)
    labels = make_label_sampler(G, opts)
    g_dev = module_device(G, opts.device)
    rows = []
    mine = rank_indices(num_samples, opts)
    with torch.no_grad(), eval_mode(G), weight_cache():
        for idx in progress_bar(list(batches(mine, opts.batch)), opts.progress and opts.is_leader, "ls"):
            z, c = sample_latents(G, idx, opts.seed, labels, g_dev)
            ws = G.mapping(z, c, psi=opts.psi)  # [B, L, D]
            img = G.synthesis(ws, noise_mode=opts.noise_mode)
            img = downsample_to(img, 256).to(opts.device)
            logits = classifier(img)
            logits = logits.reshape(logits.shape[0], -1).float()  # [B, A]
            row = torch.cat([z.to(opts.device).float(), ws[:, -1].to(opts.device).float(), logits], dim=1)
            rows.append(gather_rows(row, opts).cpu())
    if not opts.is_leader:
        return dict(z=float("nan"), w=float("nan"))
    data = torch.cat(rows)[:num_samples].numpy()
    zd, wd = int(G.z_dim), int(ws.shape[-1])
    z_all, w_all, logit_all = data[:, :zd], data[:, zd : zd + wd], data[:, zd + wd :]
    return dict(
        z=separability_score(z_all, logit_all, keep, opts.seed),
        w=separability_score(w_all, logit_all, keep, opts.seed),
    )


__all__ = [
    "AttributeClassifier",
    "ClassifierConfig",
    "TrainReport",
    "attribute_entropy",
    "compute_ls",
    "conditional_entropy",
    "fit_linear_svm",
    "load_attribute_classifier",
    "most_confident",
    "save_attribute_classifier",
    "separability_score",
    "train_attribute_classifier",
]
