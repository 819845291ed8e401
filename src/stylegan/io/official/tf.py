"""TensorFlow StyleGAN2 pickles (NVlabs/stylegan2, stylegan2-ada TF) -> our modules.

TensorFlow StyleGAN (v1) networks (G_style / D_basic) are read by `tf1`; the dispatcher picks.
Variable naming and the filling rule are in `tf_common`.

Layout transforms (TF -> ours):

* dense weights [in, out] -> [out, in] (transpose);
* conv weights [kh, kw, in, out] -> [out, in, kh, kw] (transpose(3, 2, 0, 1));
* the generator's upsampling convs (`Conv0_up`, resnet `Skip`) are additionally flipped in both
  spatial axes: TF's `upsample_conv_2d` flips the kernel before its transposed convolution, and
  ours, like the official PyTorch port, runs upsampling convs with flip_weight=False (no flip);
  plain and downsampling convs are cross-correlations in both, so they are not flipped;
* style affine bias: TF adds the constant 1 outside the variable (`mod_bias + 1`), ours stores it;
* `4x4/Const/const` [1, C, 4, 4] -> [C, 4, 4]; `noise{i}` [1, 1, R, R] -> [R, R], i = 0 for the
  4x4 conv, 2 log2(R) - 5 for Conv0_up and 2 log2(R) - 4 for Conv1 at R x R;
* `dlatent_avg` -> mapping.w_avg; `lod` is ignored (unused by StyleGAN2).

TF `fmap_base` counts channels at stage 0 (nf(s) = fmap_base / 2^s for the block at 2^(s+1)), so
our channel_base = 2 * fmap_base.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ...models import DiscriminatorConfig, GeneratorConfig, MappingConfig
from ...models.lod import log2_resolution
from .common import (MALFORMED, Kwargs, OfficialFormatError, ForeignNetwork, as_arch, as_filter, as_float, as_int,
                     opt_float)
from .records import TFNetwork
from .tf_common import (DERIVED, Source, merged_kwargs, tf_conv, tf_conv_flip, tf_dense, tf_first, tf_noise,
                        tf_params, tf_same, tf_to_ours_state)

__all__ = ["tf_network", "tf_generator_config", "tf_discriminator_config", "tf_generator_sources",
           "tf_discriminator_sources"]

_TF_IGNORED = {"lod": "level of detail of progressive growing; unused by StyleGAN2"}


def _plus_one(a: np.ndarray) -> np.ndarray:
    return a + 1


def _unless(value: int | None, default: int | None) -> int | None:
    """None when `value` equals what our config derives by default (keeps configs canonical)."""
    return None if value == default else value


def _network_fields(kw: Kwargs, stages: range, architecture: str, where: str) -> dict[str, Any]:
    """The kwargs G and D share -> our config fields (channels, architecture, filter, fp16, clamp).

    TF channel counts are nf(s) = clip(fmap_base / 2^s, fmap_min, fmap_max) over `stages`; ours have
    no lower clip, so an fmap_min that would raise any stage is refused.
    """
    kw.require("fmap_decay", 1.0, "channel count rule")
    fmap_base = as_int(kw.take("fmap_base", 16 << 10), "fmap_base", 1)
    fmap_max = as_int(kw.take("fmap_max", 512), "fmap_max", 1)
    fmap_min = as_int(kw.take("fmap_min", 1), "fmap_min")
    for s in stages:
        if int(fmap_base / 2.0 ** s) < fmap_min:
            raise OfficialFormatError(f"{where}: fmap_min={fmap_min} raises the channels at stage {s} "
                                      f"above fmap_base / 2^s; not supported")
    return dict(
        channel_base=2 * fmap_base,
        channel_max=fmap_max,
        architecture=as_arch(kw.take("architecture", architecture), "architecture"),
        resample_filter=as_filter(kw.take("resample_kernel", [1, 3, 3, 1]), "resample_kernel"),
        conv_clamp=opt_float(kw.take("conv_clamp"), "conv_clamp"),
        num_fp16_res=as_int(kw.take("num_fp16_res", 0), "num_fp16_res"),
    )


_TF_HARMLESS = {
    "truncation_psi": "a sampling default; pass psi at call time",
    "truncation_cutoff": "a sampling default; pass cutoff at call time",
    "truncation_psi_val": "a sampling default",
    "truncation_cutoff_val": "a sampling default",
    "style_mixing_prob": "training only",
    "is_training": "training only",
    "is_validation": "evaluation flag",
    "is_template_graph": "TF graph construction flag",
    "return_dlatents": "TF output selection",
    "randomize_noise": "noise mode is chosen at call time",
    "fused_modconv": "fused and unfused modulated convolutions compute the same result",
    "dlatent_broadcast": "derived from the synthesis network",
    "dtype": "variables are stored in float32",
    "components": "TF graph construction detail",
    "structure": "TF graph construction detail",
}


def tf_generator_config(G: TFNetwork, params: dict[str, np.ndarray]) -> tuple[Any, list[str]]:
    """TF StyleGAN2 G_main kwargs (+ defaults of its build functions) -> our GeneratorConfig."""
    notes: list[str] = []
    if G.build_func_name != "G_main":
        raise OfficialFormatError(f"TF generator built by {G.build_func_name!r}; StyleGAN2 generators are "
                                  f"built by 'G_main'")
    synth = G.components.get("synthesis")
    if not isinstance(synth, TFNetwork) or not isinstance(G.components.get("mapping"), TFNetwork):
        raise OfficialFormatError("TF generator lacks its mapping / synthesis components")
    if synth.build_func_name == "G_synthesis_stylegan_revised" or "synthesis/ToRGB_lod0/weight" in params:
        raise OfficialFormatError("TF generator is a progressive StyleGAN2 config A-D network "
                                  "(G_synthesis_stylegan_revised); only configs E/F (G_synthesis_stylegan2) "
                                  "are supported")
    if "synthesis/4x4/Conv/mod_weight" not in params:
        raise OfficialFormatError(f"TF generator synthesis {synth.build_func_name!r} has no modulated "
                                  f"4x4/Conv; not a StyleGAN2 configs E/F synthesis network")
    kw = Kwargs(merged_kwargs(G), "TF G kwargs", notes)
    kw.take("mapping_func")
    kw.take("synthesis_func")
    z_dim = as_int(kw.take("latent_size", 512), "latent_size")
    c_dim = as_int(kw.take("label_size", 0), "label_size")
    w_dim = as_int(kw.take("dlatent_size", 512), "dlatent_size", 1)
    res = as_int(kw.take("resolution", 1024), "resolution", 4)
    channels = as_int(kw.take("num_channels", 3), "num_channels", 1)
    if c_dim > 0 and "mapping/LabelEmbed/weight" not in params:
        raise OfficialFormatError("conditional TF StyleGAN2 generator with LabelConcat conditioning (the original "
                                  "stylegan2 repository); only the stylegan2-ada label embedding is supported")
    beta = kw.take("dlatent_avg_beta", 0.995)
    embed = params.get("mapping/LabelEmbed/weight")
    mcfg = MappingConfig(
        num_layers=as_int(kw.take("mapping_layers", 8), "mapping_layers"),
        lr_multiplier=as_float(kw.take("mapping_lrmul", 0.01), "mapping_lrmul"),
        w_avg_beta=1.0 if beta is None else as_float(beta, "dlatent_avg_beta"),  # None: never updated
        embed_features=_unless(int(embed.shape[1]) if embed is not None and embed.ndim == 2 else None, w_dim),
        layer_features=_unless(as_int(kw.take("mapping_fmaps", 512), "mapping_fmaps", 1), w_dim),
    )
    kw.take("label_fmaps")  # the embedding width is read from the LabelEmbed variable's shape
    kw.require("mapping_nonlinearity", "lrelu", "the mapping activation")
    kw.require("normalize_latents", True, "z normalisation")
    kw.require("nonlinearity", "lrelu", "the synthesis activation")
    fields = _network_fields(kw, range(1, int(np.log2(res))), "skip", "TF G kwargs")
    fields["use_noise"] = bool(kw.take("use_noise", True))
    for key, why in _TF_HARMLESS.items():
        kw.harmless(key, why)
    kw.finish()
    try:
        cfg = GeneratorConfig(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=res, img_channels=channels,
                              mapping=mcfg, version=2, **fields)
    except (TypeError, ValueError) as e:
        raise OfficialFormatError(f"TF G kwargs: {e}") from None
    return cfg, notes


def tf_discriminator_config(D: TFNetwork, params: dict[str, np.ndarray]) -> tuple[Any, list[str]]:
    """TF StyleGAN2 D_stylegan2 (or stylegan2-ada D_main) kwargs -> our DiscriminatorConfig."""
    notes: list[str] = []
    if D.build_func_name not in ("D_stylegan2", "D_main"):
        raise OfficialFormatError(f"TF discriminator built by {D.build_func_name!r}; StyleGAN2 configs E/F "
                                  f"discriminators are built by 'D_stylegan2' (or 'D_main' in stylegan2-ada)")
    kw = Kwargs(merged_kwargs(D), "TF D kwargs", notes)
    c_dim = as_int(kw.take("label_size", 0), "label_size")
    res = as_int(kw.take("resolution", 1024), "resolution", 4)
    channels = as_int(kw.take("num_channels", 3), "num_channels", 1)
    num_mapping = len([k for k in params if re.fullmatch(r"Mapping\d+/weight", k)])
    cmap_dim = None
    if c_dim > 0:
        if "LabelEmbed/weight" not in params or "Output/weight" not in params:
            raise OfficialFormatError("conditional TF StyleGAN2 discriminator with the original stylegan2 "
                                      "output conditioning; only the stylegan2-ada label projection is supported")
        cmap_dim = int(params["Output/weight"].shape[-1])
    embed = params.get("LabelEmbed/weight")
    hidden = params.get("Mapping0/weight")
    lrmul = as_float(kw.take("mapping_lrmul", 0.1), "mapping_lrmul")
    if c_dim > 0:  # the label mapping exists only in conditional discriminators
        mcfg = MappingConfig(
            num_layers=num_mapping, lr_multiplier=lrmul, w_avg_beta=None,
            embed_features=_unless(int(embed.shape[1]) if embed.ndim == 2 else None, cmap_dim),
            layer_features=_unless(int(hidden.shape[1]) if hidden is not None and hidden.ndim == 2
                                   and num_mapping > 1 else None, cmap_dim),
        )
    else:
        mcfg = MappingConfig(w_avg_beta=None)
    kw.take("mapping_layers")  # these three are read from the LabelEmbed / Mapping{i} variables
    kw.take("mapping_fmaps")
    kw.take("label_fmaps")
    kw.require("nonlinearity", "lrelu", "the discriminator activation")
    fields = _network_fields(kw, range(0, int(np.log2(res))), "resnet", "TF D kwargs")
    # Function defaults differ: D_stylegan2 (stylegan2) groups 4 samples, D_main (stylegan2-ada) the
    # whole minibatch. D_stylegan2 skips the layer for group sizes <= 1, D_main for 0 features.
    group = kw.take("mbstd_group_size", 4 if D.build_func_name == "D_stylegan2" else None)
    group = None if group is None else as_int(group, "mbstd_group_size")
    num_features = as_int(kw.take("mbstd_num_features", 1), "mbstd_num_features")
    if D.build_func_name == "D_stylegan2" and group is not None and group <= 1:
        group, num_features = 4, 0
    fields.update(mbstd_group_size=group, mbstd_num_channels=num_features)
    for key, why in _TF_HARMLESS.items():
        kw.harmless(key, why)
    kw.finish()
    try:
        cfg = DiscriminatorConfig(c_dim=c_dim, img_resolution=res, img_channels=channels, version=2,
                                  mapping=mcfg, **fields)
        if cmap_dim is not None and cmap_dim != cfg.channels(4):
            cfg = cfg.replace(cmap_dim=cmap_dim)
    except (TypeError, ValueError) as e:
        raise OfficialFormatError(f"TF D kwargs: {e}") from None
    return cfg, notes


def tf_generator_sources(key: str) -> Source | str:
    """Our generator state-dict key -> (TF variable, transform), or DERIVED."""
    if key.endswith("resample_filter"):
        return DERIVED
    if key == "mapping.w_avg":
        return "dlatent_avg", tf_same
    m = re.fullmatch(r"mapping\.(fc(\d+)|embed)\.(weight|bias)", key)
    if m:
        scope = f"mapping/Dense{m.group(2)}" if m.group(2) is not None else "mapping/LabelEmbed"
        return (f"{scope}/weight", tf_dense) if m.group(3) == "weight" else (f"{scope}/bias", tf_same)
    if key == "synthesis.b4.const":
        return "synthesis/4x4/Const/const", tf_first
    m = re.fullmatch(r"synthesis\.b(\d+)\.skip\.weight", key)
    if m:
        r = m.group(1)
        return f"synthesis/{r}x{r}/Skip/weight", tf_conv_flip
    m = re.fullmatch(r"synthesis\.b(\d+)\.(conv0|conv1|torgb)\.(weight|bias|affine\.weight|affine\.bias|"
                     r"noise\.const|noise\.strength)", key)
    if not m:
        raise OfficialFormatError(f"no TF variable is known for our generator tensor {key!r}")
    r, layer, var = m.groups()
    if r == "4" and layer == "conv1":
        scope, noise_idx = "4x4/Conv", 0
    elif layer == "conv0":
        scope, noise_idx = f"{r}x{r}/Conv0_up", 2 * log2_resolution(int(r)) - 5
    elif layer == "conv1":
        scope, noise_idx = f"{r}x{r}/Conv1", 2 * log2_resolution(int(r)) - 4
    else:
        scope, noise_idx = f"{r}x{r}/ToRGB", None
    scope = f"synthesis/{scope}"
    if var == "weight":
        return f"{scope}/weight", tf_conv_flip if layer == "conv0" else tf_conv
    if var == "bias":
        return f"{scope}/bias", tf_same
    if var == "affine.weight":
        return f"{scope}/mod_weight", tf_dense
    if var == "affine.bias":
        return f"{scope}/mod_bias", _plus_one
    if var == "noise.strength":
        return f"{scope}/noise_strength", tf_same
    return f"synthesis/noise{noise_idx}", tf_noise


def tf_discriminator_sources(key: str) -> Source | str:
    """Our discriminator state-dict key -> (TF variable, transform), or DERIVED."""
    if key.endswith("resample_filter"):
        return DERIVED
    m = re.fullmatch(r"mapping\.(fc(\d+)|embed)\.(weight|bias)", key)
    if m:
        scope = f"Mapping{m.group(2)}" if m.group(2) is not None else "LabelEmbed"
        return (f"{scope}/weight", tf_dense) if m.group(3) == "weight" else (f"{scope}/bias", tf_same)
    m = re.fullmatch(r"b4\.(conv|fc|out|fromrgb)\.(weight|bias)", key)
    if m:
        layer, var = m.groups()
        scope, fn = {"conv": ("4x4/Conv", tf_conv), "fc": ("4x4/Dense0", tf_dense), "out": ("Output", tf_dense),
                     "fromrgb": ("4x4/FromRGB", tf_conv)}[layer]
        return (f"{scope}/weight", fn) if var == "weight" else (f"{scope}/bias", tf_same)
    m = re.fullmatch(r"b(\d+)\.(fromrgb|conv0|conv1|skip)\.(weight|bias)", key)
    if not m:
        raise OfficialFormatError(f"no TF variable is known for our discriminator tensor {key!r}")
    r, layer, var = m.groups()
    scope = f"{r}x{r}/" + {"fromrgb": "FromRGB", "conv0": "Conv0", "conv1": "Conv1_down", "skip": "Skip"}[layer]
    return (f"{scope}/weight", tf_conv) if var == "weight" else (f"{scope}/bias", tf_same)



def tf_network(path: Path, name: str, net: TFNetwork) -> ForeignNetwork:
    """Describe one TF network of a pickle as an importable ForeignNetwork."""
    what = f"{path.name} [{name}]"
    func = net.build_func_name
    kind = "discriminator" if func.startswith("D_") else "generator"
    result = ForeignNetwork(name, kind, f"tensorflow {func}")
    try:
        version = net.state.get("version")
        if version not in (3, 4):
            raise OfficialFormatError(f"TF network pickle version {version!r} is not supported (3 or 4)")
        params = tf_params(net)
        if kind == "generator":
            result.cfg, result.notes = tf_generator_config(net, params)
            sources = tf_generator_sources
        else:
            result.cfg, result.notes = tf_discriminator_config(net, params)
            sources = tf_discriminator_sources
        result.notes += [f"ignored TF variable {k} ({why})" for k, why in _TF_IGNORED.items() if k in params]
    except OfficialFormatError as e:
        result.error = f"{what}: {e}"
        return result
    except MALFORMED as e:
        result.error = f"{what}: malformed TF network record ({type(e).__name__}: {e})"
        return result
    result.state_fn = lambda module: tf_to_ours_state(params, module, sources, what, tuple(_TF_IGNORED))
    return result
