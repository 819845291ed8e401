"""TensorFlow StyleGAN (v1) pickles (NVlabs/stylegan, e.g. karras2019stylegan-ffhq-1024x1024.pkl).

The pickle is a `(G, D, Gs)` tuple of `dnnlib.tflib.network.Network` objects (read as
`records.TFNetwork` stand-ins): G/Gs built by `G_style` with components `mapping` (`G_mapping`)
and `synthesis` (`G_synthesis`), D by `D_basic`. They become our StyleGAN v1 modules
(`models/stylegan1.py`, `GeneratorConfig(version=1)`); variables are named
`<component>/<scope>/<var>` relative to the top network as in `tf_common`.

Conventions (TF v1 `networks_stylegan.py` -> ours), all exact in real arithmetic:

* Equalized lr: TF v1 `get_weight(use_wscale=True, lrmul)` stores N(0, 1/lrmul) and multiplies by
  gain * lrmul / sqrt(fan_in) at run time, then adds `bias * lrmul` and applies the activation
  with no gain. Our synthesis / D layers (`V1Conv`, `V1Dense`) use the same convention, so their
  weights and biases copy over (dense [in, out] -> [out, in]; conv [kh, kw, in, out] ->
  [out, in, kh, kw]). Our *mapping* network is the shared StyleGAN2 one: it stores the weights
  the same way (N(0, 1/lrmul), run-time lrmul / sqrt(fan_in)) but applies the sqrt(2) gain after
  lrelu. lrelu is positively homogeneous, so sqrt2 * lrelu(a + lrmul b') == lrelu(sqrt2 a +
  lrmul b) with b' = b / sqrt(2): mapping biases are divided by sqrt(2), weights copy over.
* `StyleMod` is a dense layer with gain 1 (our `affine`); TF adds 1 to the scale half outside
  the variable (`x * (style[:, 0] + 1) + style[:, 1]`), ours stores it: bias[:C] + 1.
* Noise: `Noise/weight` [C] is our per-channel `noise.strength`; `noise{i}` [1, 1, R, R] our
  `noise.const`, i = layer index (0: 4x4 Const/Dense, 1: 4x4 Conv, 2 log2 R - 4: Conv0_up,
  2 log2 R - 3: Conv1).
* `fused_scale`: TF replaces upscale2d + conv2d by one `conv2d_transpose` (stride 2) with the 4x4
  kernel sum of the four 1-pixel shifts of the (transposed) 3x3 kernel, and conv2d + downscale2d
  by one stride-2 conv2d with the same sum / 4; 'auto' (the default) fuses where the output (G)
  or input (D) is >= 128 px. The fused downscale equals conv -> 2x2 average pool with the same
  kernel; the fused upscale equals nearest 2x -> conv with the kernel *flipped* in both spatial
  axes (a transposed convolution runs the kernel backwards). So fused `Conv0_up` weights are
  flipped on import, non-fused ones are not, and D's `Conv1_down` never is
  (tests/test_official_tf1.py checks all three against a NumPy model of the TF ops).
* `lod`: G_style's own `lod` is assigned to the synthesis network's on every call, so it fills
  our `synthesis.lod` and `synthesis/lod` is ignored; D_basic's `lod` fills our D's `lod`.
* `dlatent_avg` -> `mapping.w_avg`. G_style truncates by default (psi 0.7 on the first 8 style
  inputs); ours truncates only when asked: call G(z, psi=0.7, cutoff=8) for Gs.run's default.

TF `fmap_base` counts channels per stage (nf(s) = fmap_base / 2^s at 2^(s+1)): channel_base =
2 * fmap_base, so the official 8192 is our 16384 (the sg1-* presets).
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ...models import DiscriminatorConfig, GeneratorConfig, MappingConfig
from ...models.config import StyleGAN1Options
from ...models.lod import log2_resolution
from .common import MALFORMED, Kwargs, OfficialFormatError, ForeignNetwork, as_float, as_int
from .records import TFNetwork
from .tf_common import (DERIVED, Source, check_ndim, merged_kwargs, tf_conv, tf_conv_flip, tf_dense, tf_first,
                        tf_noise, tf_params, tf_same, tf_to_ours_state)

__all__ = ["tf1_network", "tf1_generator_config", "tf1_discriminator_config", "tf1_generator_sources",
           "tf1_discriminator_sources", "fused_scale_at", "V1_BUILD_FUNCS"]

V1_BUILD_FUNCS = ("G_style", "D_basic")
_FUSE_FROM = 128  # fused_scale='auto' threshold in pixels (G: output of the layer, D: its input)

_HARMLESS = {
    "truncation_psi_val": "a validation-time sampling default",
    "truncation_cutoff_val": "a validation-time sampling default",
    "style_mixing_prob": "training only",
    "is_training": "training only",
    "is_validation": "evaluation flag",
    "is_template_graph": "TF graph construction flag",
    "force_clean_graph": "TF graph construction flag",
    "randomize_noise": "noise mode is chosen at call time (noise_mode='random' or 'const')",
    "dlatent_broadcast": "derived from the synthesis network",
    "dtype": "variables are stored in float32",
    "components": "TF graph construction detail",
}


def _bool(v: Any, what: str) -> bool:
    if isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, np.integer)) and int(v) in (0, 1)):
        return bool(v)
    raise OfficialFormatError(f"{what} must be a boolean, got {v!r}")


def _blur(v: Any, what: str) -> tuple[int, ...]:
    """TF `blur_filter` (taps or None) -> our resample_filter; (1,) = no blur."""
    if v is None:
        return (1,)
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if not isinstance(v, (list, tuple)):
        raise OfficialFormatError(f"{what} must be a list of taps or None, got {v!r}")
    if len(v) == 0:
        return (1,)
    taps = []
    for t in v:
        if isinstance(t, (float, np.floating)) and float(t).is_integer():
            t = int(t)
        taps.append(as_int(t, what))
    # TF blurs with a 'SAME' depthwise cross-correlation; ours with a centred convolution. They agree
    # for odd-length symmetric filters (every official config: [1, 2, 1] or None).
    if len(taps) % 2 == 0 or taps != taps[::-1] or sum(taps) == 0:
        raise OfficialFormatError(f"{what}={list(v)!r} is not supported (only odd-length symmetric "
                                  f"filters such as [1, 2, 1], or None)")
    return tuple(taps)


def _fused_kwarg(v: Any, what: str) -> bool | str:
    if isinstance(v, str) and v == "auto":
        return "auto"
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    raise OfficialFormatError(f"{what} must be True, False or 'auto', got {v!r}")


def fused_scale_at(fused_scale: bool | str, resolution: int) -> bool:
    """Whether TF fuses the resampling of the layer whose larger side is `resolution` px."""
    return resolution >= _FUSE_FROM if fused_scale == "auto" else bool(fused_scale)


def _structure(kw: Kwargs, where: str) -> None:
    value = kw.take("structure", "auto")
    if value == "fixed":
        raise OfficialFormatError(f"{where}.structure='fixed' (no progressive growing: a single ToRGB / "
                                  f"FromRGB) is not supported; only the growing structures are")
    if value not in ("auto", "linear", "recursive"):
        raise OfficialFormatError(f"{where}.structure={value!r} is not one of 'auto', 'linear', 'recursive'")


def _lod(params: dict[str, np.ndarray], name: str, resolution: int, where: str) -> float | None:
    if name not in params:
        return None  # reported as a missing variable
    value = np.asarray(params[name])
    if value.size != 1:
        raise OfficialFormatError(f"{where}: {name} has shape {value.shape}, expected a scalar")
    lod = float(value.reshape(()))
    top = int(math.log2(resolution)) - 2
    if not (0.0 <= lod <= top):  # also refuses NaN
        raise OfficialFormatError(f"{where}: {name}={lod} is outside [0, {top}] (0 = full resolution)")
    return lod


def tf1_generator_config(G: TFNetwork, params: dict[str, np.ndarray]) -> tuple[Any, list[str], bool | str]:
    """TF G_style kwargs (+ the defaults of G_mapping / G_synthesis) -> GeneratorConfig, notes, fused_scale."""
    notes: list[str] = []
    if G.build_func_name != "G_style":
        raise OfficialFormatError(f"TF StyleGAN generator built by {G.build_func_name!r}, expected 'G_style'")
    mapping, synth = G.components.get("mapping"), G.components.get("synthesis")
    if not isinstance(mapping, TFNetwork) or not isinstance(synth, TFNetwork):
        raise OfficialFormatError("TF generator lacks its mapping / synthesis components")
    for comp, func in ((mapping, "G_mapping"), (synth, "G_synthesis")):
        if comp.build_func_name != func:
            raise OfficialFormatError(f"TF G_style component {comp.name!r} is built by {comp.build_func_name!r}; "
                                      f"only the StyleGAN {func} is supported")
    kw = Kwargs(merged_kwargs(G), "TF G kwargs", notes)
    z_dim = as_int(kw.take("latent_size", 512), "latent_size", 1)
    c_dim = as_int(kw.take("label_size", 0), "label_size")
    if c_dim:
        raise OfficialFormatError("conditional TF StyleGAN generator (LabelConcat: a raw label embedding "
                                  "concatenated with z before one joint normalisation); our conditioning differs")
    w_dim = as_int(kw.take("dlatent_size", 512), "dlatent_size", 1)
    res = as_int(kw.take("resolution", 1024), "resolution", 4)
    channels = as_int(kw.take("num_channels", 3), "num_channels", 1)
    beta = kw.take("dlatent_avg_beta", 0.995)
    hidden = as_int(kw.take("mapping_fmaps", 512), "mapping_fmaps", 1)
    num_layers = as_int(kw.take("mapping_layers", 8), "mapping_layers")
    mcfg = MappingConfig(
        num_layers=num_layers,
        lr_multiplier=as_float(kw.take("mapping_lrmul", 0.01), "mapping_lrmul"),
        w_avg_beta=1.0 if beta is None else as_float(beta, "dlatent_avg_beta"),  # None: never updated
        layer_features=None if hidden == w_dim or num_layers <= 1 else hidden,  # unused with <= 1 layer
    )
    if mcfg.lr_multiplier <= 0:
        raise OfficialFormatError(f"mapping_lrmul must be positive, got {mcfg.lr_multiplier}")
    kw.require("mapping_nonlinearity", "lrelu", "the mapping activation")
    kw.require("nonlinearity", "lrelu", "the synthesis activation")
    kw.require("normalize_latents", True, "z normalisation")
    kw.require("use_wscale", True, "equalized learning rate")
    kw.require("fmap_decay", 1.0, "channel count rule")
    fmap_base = as_int(kw.take("fmap_base", 8192), "fmap_base", 1)
    fmap_max = as_int(kw.take("fmap_max", 512), "fmap_max", 1)
    pixel = _bool(kw.take("use_pixel_norm", False), "use_pixel_norm")
    instance = _bool(kw.take("use_instance_norm", True), "use_instance_norm")
    if pixel == instance:
        raise OfficialFormatError(f"use_pixel_norm={pixel} with use_instance_norm={instance} is not supported "
                                  f"(exactly one normalisation per layer is implemented)")
    opts = StyleGAN1Options(const_input=_bool(kw.take("const_input_layer", True), "const_input_layer"),
                            use_styles=_bool(kw.take("use_styles", True), "use_styles"),
                            normalization="pixel" if pixel else "instance")
    use_noise = _bool(kw.take("use_noise", True), "use_noise")
    fused = _fused_kwarg(kw.take("fused_scale", "auto"), "fused_scale")
    blur = _blur(kw.take("blur_filter", [1, 2, 1]), "blur_filter")
    _structure(kw, "TF G kwargs")
    psi, cutoff = kw.take("truncation_psi", 0.7), kw.take("truncation_cutoff", 8)
    if psi is not None and psi != 1 and cutoff is not None and cutoff > 0:
        notes.append(f"TF Gs.run() truncates by default (truncation_psi={psi}, truncation_cutoff={cutoff}); "
                     f"ours only when asked: G(z, psi={psi}, cutoff={cutoff}) reproduces it")
    for key, why in _HARMLESS.items():
        kw.harmless(key, why)
    kw.finish()
    try:
        cfg = GeneratorConfig(z_dim=z_dim, c_dim=0, w_dim=w_dim, img_resolution=res, img_channels=channels,
                              mapping=mcfg, version=1, architecture="orig", channel_base=2 * fmap_base,
                              channel_max=fmap_max, num_fp16_res=0, conv_clamp=None, resample_filter=blur,
                              use_noise=use_noise, growing=True, v1=opts)
    except (TypeError, ValueError) as e:
        raise OfficialFormatError(f"TF G kwargs: {e}") from None
    _lod(params, "lod", res, "TF G")
    flipped = [r for r in (2 ** i for i in range(3, int(math.log2(res)) + 1)) if fused_scale_at(fused, r)]
    if flipped:
        notes.append(f"Conv0_up at {flipped[0]}..{flipped[-1]} px used fused_scale (one transposed conv); "
                     f"imported as nearest 2x + 3x3 conv with the kernel flipped, which is identical")
    if "synthesis/lod" in params:
        theirs, ours = np.asarray(params["synthesis/lod"]), np.asarray(params.get("lod", np.nan))
        extra = "" if theirs.shape == ours.shape and np.array_equal(theirs, ours) else \
            f" (it held {theirs.tolist()!r}, G's lod {ours.tolist()!r} wins, as in TF)"
        notes.append(f"ignored TF variable synthesis/lod (G_style assigns its own lod to it on every call){extra}")
    return cfg, notes, fused


def tf1_discriminator_config(D: TFNetwork, params: dict[str, np.ndarray]) -> tuple[Any, list[str], bool | str]:
    """TF D_basic kwargs (+ its defaults) -> DiscriminatorConfig, notes, fused_scale."""
    notes: list[str] = []
    if D.build_func_name != "D_basic":
        raise OfficialFormatError(f"TF StyleGAN discriminator built by {D.build_func_name!r}, expected 'D_basic'")
    kw = Kwargs(merged_kwargs(D), "TF D kwargs", notes)
    c_dim = as_int(kw.take("label_size", 0), "label_size")
    if c_dim:
        raise OfficialFormatError("conditional TF StyleGAN discriminator (LabelSwitch: one output per class, "
                                  "selected by the label); our conditioning is a projection")
    res = as_int(kw.take("resolution", 32), "resolution", 4)  # D_basic's own defaults: 32 px, 1 channel
    channels = as_int(kw.take("num_channels", 1), "num_channels", 1)
    kw.require("nonlinearity", "lrelu", "the discriminator activation")
    kw.require("use_wscale", True, "equalized learning rate")
    kw.require("fmap_decay", 1.0, "channel count rule")
    fmap_base = as_int(kw.take("fmap_base", 8192), "fmap_base", 1)
    fmap_max = as_int(kw.take("fmap_max", 512), "fmap_max", 1)
    group = as_int(kw.take("mbstd_group_size", 4), "mbstd_group_size")
    features = as_int(kw.take("mbstd_num_features", 1), "mbstd_num_features")
    if group <= 1:  # D_basic skips the layer
        group, features = 4, 0
    fused = _fused_kwarg(kw.take("fused_scale", "auto"), "fused_scale")
    blur = _blur(kw.take("blur_filter", [1, 2, 1]), "blur_filter")
    _structure(kw, "TF D kwargs")
    for key, why in _HARMLESS.items():
        kw.harmless(key, why)
    kw.finish()
    try:
        cfg = DiscriminatorConfig(c_dim=0, img_resolution=res, img_channels=channels, version=1, architecture="orig",
                                  channel_base=2 * fmap_base, channel_max=fmap_max, num_fp16_res=0, conv_clamp=None,
                                  resample_filter=blur, mbstd_group_size=group, mbstd_num_channels=features,
                                  growing=True)
    except (TypeError, ValueError) as e:
        raise OfficialFormatError(f"TF D kwargs: {e}") from None
    _lod(params, "lod", res, "TF D")
    return cfg, notes, fused


# ----------------------------------------------------------------------------- name mapping


def _mapping_bias(a: np.ndarray) -> np.ndarray:
    """TF v1 lrelu(sqrt2 * a + lrmul * b) == ours sqrt2 * lrelu(a + lrmul * b / sqrt2)."""
    check_ndim(a, 1, "bias [C]")
    return np.asarray(a, dtype=np.float64) / math.sqrt(2.0)


def _style_bias(a: np.ndarray) -> np.ndarray:
    """StyleMod bias [2C]: TF adds 1 to the scale half at run time; ours stores it."""
    check_ndim(a, 1, "StyleMod bias [2C]")
    if a.shape[0] % 2:
        raise OfficialFormatError(f"StyleMod bias has odd length {a.shape[0]}")
    out = np.asarray(a, dtype=np.float64).copy()
    out[:a.shape[0] // 2] += 1.0
    return out


def _scalar(a: np.ndarray) -> np.ndarray:
    if np.asarray(a).size != 1:
        raise OfficialFormatError(f"expected a scalar, got shape {np.shape(a)}")
    return np.asarray(a).reshape(())


def tf1_generator_sources(cfg: Any, fused_scale: bool | str) -> Callable[[str], Source | str]:
    """Our generator state-dict key -> (TF variable, transform), or DERIVED."""
    top = log2_resolution(cfg.img_resolution)
    first = "4x4/Const" if (cfg.v1 is None or cfg.v1.const_input) else "4x4/Dense"

    def sources(key: str) -> Source | str:
        if key.endswith("blur_filter"):
            return DERIVED
        if key == "synthesis.lod":
            return "lod", _scalar
        if key == "mapping.w_avg":
            return "dlatent_avg", tf_same
        m = re.fullmatch(r"mapping\.fc(\d+)\.(weight|bias)", key)
        if m:
            scope = f"mapping/Dense{m.group(1)}"
            return (f"{scope}/weight", tf_dense) if m.group(2) == "weight" else (f"{scope}/bias", _mapping_bias)
        if key == "synthesis.b4.const":
            return "synthesis/4x4/Const/const", tf_first
        if key == "synthesis.b4.dense.weight":
            return "synthesis/4x4/Dense/weight", tf_dense
        m = re.fullmatch(r"synthesis\.b(\d+)\.torgb\.(weight|bias)", key)
        if m:
            scope = f"synthesis/ToRGB_lod{top - log2_resolution(int(m.group(1)))}"
            return (f"{scope}/weight", tf_conv) if m.group(2) == "weight" else (f"{scope}/bias", tf_same)
        m = re.fullmatch(r"synthesis\.b(\d+)\.conv([01])\.weight", key)
        if m:
            r, j = int(m.group(1)), m.group(2)
            if r == 4:
                return "synthesis/4x4/Conv/weight", tf_conv
            if j == "0":
                return f"synthesis/{r}x{r}/Conv0_up/weight", tf_conv_flip if fused_scale_at(fused_scale, r) else tf_conv
            return f"synthesis/{r}x{r}/Conv1/weight", tf_conv
        m = re.fullmatch(r"synthesis\.b(\d+)\.epilogue([01])\.(bias|noise\.strength|noise\.const|affine\.weight|"
                         r"affine\.bias)", key)
        if not m:
            raise OfficialFormatError(f"no TF variable is known for our generator tensor {key!r}")
        r, j, var = int(m.group(1)), int(m.group(2)), m.group(3)
        if r == 4:
            scope = first if j == 0 else "4x4/Conv"
        else:
            scope = f"{r}x{r}/Conv0_up" if j == 0 else f"{r}x{r}/Conv1"
        scope = f"synthesis/{scope}"
        if var == "bias":
            return f"{scope}/bias", tf_same
        if var == "noise.strength":
            return f"{scope}/Noise/weight", tf_same
        if var == "affine.weight":
            return f"{scope}/StyleMod/weight", tf_dense
        if var == "affine.bias":
            return f"{scope}/StyleMod/bias", _style_bias
        return f"synthesis/noise{2 * log2_resolution(int(r)) - 4 + j}", tf_noise

    return sources


def tf1_discriminator_sources(cfg: Any) -> Callable[[str], Source | str]:
    """Our discriminator state-dict key -> (TF variable, transform), or DERIVED.

    Conv1_down is never flipped: the fused conv2d_downscale2d equals conv -> 2x2 average pool.
    """
    top = log2_resolution(cfg.img_resolution)

    def sources(key: str) -> Source | str:
        if key.endswith("blur_filter"):
            return DERIVED
        if key == "lod":
            return "lod", _scalar
        m = re.fullmatch(r"b(\d+)\.(fromrgb|conv0|conv1|conv|fc|out)\.(weight|bias)", key)
        if not m:
            raise OfficialFormatError(f"no TF variable is known for our discriminator tensor {key!r}")
        r, layer, var = int(m.group(1)), m.group(2), m.group(3)
        fn = tf_conv
        if layer == "fromrgb":
            scope = f"FromRGB_lod{top - log2_resolution(int(r))}"
        elif r == 4:
            scope, fn = {"conv": ("4x4/Conv", tf_conv), "fc": ("4x4/Dense0", tf_dense),
                         "out": ("4x4/Dense1", tf_dense)}[layer]
        else:
            scope = f"{r}x{r}/" + {"conv0": "Conv0", "conv1": "Conv1_down"}[layer]
        return (f"{scope}/weight", fn) if var == "weight" else (f"{scope}/bias", tf_same)

    return sources


def tf1_network(path: Path, name: str, net: TFNetwork) -> ForeignNetwork:
    """Describe one TF StyleGAN (v1) network of a pickle as an importable ForeignNetwork."""
    what = f"{path.name} [{name}]"
    func = net.build_func_name
    kind = "discriminator" if func == "D_basic" else "generator"
    result = ForeignNetwork(name, kind, f"tensorflow {func}")
    try:
        version = net.state.get("version")
        if version not in (2, 3, 4):
            raise OfficialFormatError(f"TF network pickle version {version!r} is not supported (2, 3 or 4)")
        params = tf_params(net)
        if kind == "generator":
            result.cfg, result.notes, fused = tf1_generator_config(net, params)
            sources, ignored = tf1_generator_sources(result.cfg, fused), {"synthesis/lod"}
        else:
            result.cfg, result.notes, fused = tf1_discriminator_config(net, params)
            sources, ignored = tf1_discriminator_sources(result.cfg), set()
    except OfficialFormatError as e:
        result.error = f"{what}: {e}"
        return result
    except MALFORMED as e:
        result.error = f"{what}: malformed TF network record ({type(e).__name__}: {e})"
        return result
    result.state_fn = lambda module: tf_to_ours_state(params, module, sources, what, ignored)
    return result
