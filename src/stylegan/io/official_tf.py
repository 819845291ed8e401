"""TensorFlow StyleGAN2 pickles (NVlabs/stylegan2, stylegan2-ada TF) -> our modules.

TensorFlow StyleGAN (v1) networks (G_style / D_basic) are dispatched to `official_tf1`.

A TF pickle holds `dnnlib.tflib.network.Network` objects (read as `official.TFNetwork` stand-ins):
`static_kwargs` (the build function's keyword arguments), `components` ({'mapping', 'synthesis'}
for G) and `variables` [(name, ndarray)]. Variables are named here as `<component>/<scope>/<var>`
relative to the top network ('mapping/Dense0/weight', 'synthesis/8x8/Conv0_up/weight',
'dlatent_avg').

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
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from .official import (_MALFORMED, OfficialFormatError, OfficialNetwork, TFNetwork, _arch, _filter, _fit_state,
                       _float, _int, _Kwargs, _opt_float)

__all__ = ["tf_params", "tf_network", "tf_generator_config", "tf_discriminator_config",
           "tf_generator_sources", "tf_discriminator_sources", "tf_to_ours_state"]

DERIVED = "derived"  # our buffers computed from the config (resample filters), not stored by TF


def tf_params(net: TFNetwork, prefix: str = "") -> dict[str, np.ndarray]:
    """All variables of a TF network and its components, named '<component>/.../<var>'."""
    out: dict[str, np.ndarray] = {}
    variables = net.state.get("variables") or []
    if not isinstance(variables, (list, tuple)):
        raise OfficialFormatError(f"TF network {net.name!r}: variables is not a list")
    for item in variables:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            raise OfficialFormatError(f"TF network {net.name!r}: malformed variable entry")
        name, value = item
        if not isinstance(value, (np.ndarray, np.generic, float, int)):
            raise OfficialFormatError(f"TF variable {prefix}{name} is a {type(value).__name__}, not an array")
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiub":
            raise OfficialFormatError(f"TF variable {prefix}{name} has dtype {arr.dtype}")
        out[prefix + name] = arr
    for comp_name, comp in net.components.items():
        if not isinstance(comp, TFNetwork):
            raise OfficialFormatError(f"TF network {net.name!r}: component {comp_name!r} is not a network")
        out.update(tf_params(comp, f"{prefix}{comp_name}/"))
    return out


def _merged_kwargs(net: TFNetwork) -> dict:
    """Static kwargs of a network and its components (components get the parent's kwargs too)."""
    merged = dict(net.static_kwargs)
    for comp in net.components.values():
        if isinstance(comp, TFNetwork):
            for k, v in comp.static_kwargs.items():
                if k in merged and not _same(merged[k], v):
                    raise OfficialFormatError(f"TF kwargs disagree between {net.name!r} and {comp.name!r} "
                                              f"on {k}: {merged[k]!r} vs {v!r}")
                merged.setdefault(k, v)
    return merged


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.all(np.asarray(a) == np.asarray(b)))
    except Exception:  # noqa: BLE001 - incomparable values are different
        return False


def _unless(value: int | None, default: int | None) -> int | None:
    """None when `value` equals what our config derives by default (keeps configs canonical)."""
    return None if value == default else value


def _network_fields(kw: _Kwargs, stages: range, architecture: str, where: str) -> dict[str, Any]:
    """The kwargs G and D share -> our config fields (channels, architecture, filter, fp16, clamp).

    TF channel counts are nf(s) = clip(fmap_base / 2^s, fmap_min, fmap_max) over `stages`; ours have
    no lower clip, so an fmap_min that would raise any stage is refused.
    """
    kw.require("fmap_decay", 1.0, "channel count rule")
    fmap_base = _int(kw.take("fmap_base", 16 << 10), "fmap_base", 1)
    fmap_max = _int(kw.take("fmap_max", 512), "fmap_max", 1)
    fmap_min = _int(kw.take("fmap_min", 1), "fmap_min")
    for s in stages:
        if int(fmap_base / 2.0 ** s) < fmap_min:
            raise OfficialFormatError(f"{where}: fmap_min={fmap_min} raises the channels at stage {s} "
                                      f"above fmap_base / 2^s; not supported")
    return dict(
        channel_base=2 * fmap_base,
        channel_max=fmap_max,
        architecture=_arch(kw.take("architecture", architecture), "architecture"),
        resample_filter=_filter(kw.take("resample_kernel", [1, 3, 3, 1]), "resample_kernel"),
        conv_clamp=_opt_float(kw.take("conv_clamp"), "conv_clamp"),
        num_fp16_res=_int(kw.take("num_fp16_res", 0), "num_fp16_res"),
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
    from ..models import GeneratorConfig, MappingConfig

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
    kw = _Kwargs(_merged_kwargs(G), "TF G kwargs", notes)
    kw.take("mapping_func")
    kw.take("synthesis_func")
    z_dim = _int(kw.take("latent_size", 512), "latent_size")
    c_dim = _int(kw.take("label_size", 0), "label_size")
    w_dim = _int(kw.take("dlatent_size", 512), "dlatent_size", 1)
    res = _int(kw.take("resolution", 1024), "resolution", 4)
    channels = _int(kw.take("num_channels", 3), "num_channels", 1)
    if c_dim > 0 and "mapping/LabelEmbed/weight" not in params:
        raise OfficialFormatError("conditional TF StyleGAN2 generator with LabelConcat conditioning (the original "
                                  "stylegan2 repository); only the stylegan2-ada label embedding is supported")
    beta = kw.take("dlatent_avg_beta", 0.995)
    embed = params.get("mapping/LabelEmbed/weight")
    mcfg = MappingConfig(
        num_layers=_int(kw.take("mapping_layers", 8), "mapping_layers"),
        lr_multiplier=_float(kw.take("mapping_lrmul", 0.01), "mapping_lrmul"),
        w_avg_beta=1.0 if beta is None else _float(beta, "dlatent_avg_beta"),  # None: never updated
        embed_features=_unless(int(embed.shape[1]) if embed is not None and embed.ndim == 2 else None, w_dim),
        layer_features=_unless(_int(kw.take("mapping_fmaps", 512), "mapping_fmaps", 1), w_dim),
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
    from ..models import DiscriminatorConfig, MappingConfig

    notes: list[str] = []
    if D.build_func_name not in ("D_stylegan2", "D_main"):
        raise OfficialFormatError(f"TF discriminator built by {D.build_func_name!r}; StyleGAN2 configs E/F "
                                  f"discriminators are built by 'D_stylegan2' (or 'D_main' in stylegan2-ada)")
    kw = _Kwargs(_merged_kwargs(D), "TF D kwargs", notes)
    c_dim = _int(kw.take("label_size", 0), "label_size")
    res = _int(kw.take("resolution", 1024), "resolution", 4)
    channels = _int(kw.take("num_channels", 3), "num_channels", 1)
    num_mapping = len([k for k in params if re.fullmatch(r"Mapping\d+/weight", k)])
    cmap_dim = None
    if c_dim > 0:
        if "LabelEmbed/weight" not in params or "Output/weight" not in params:
            raise OfficialFormatError("conditional TF StyleGAN2 discriminator with the original stylegan2 "
                                      "output conditioning; only the stylegan2-ada label projection is supported")
        cmap_dim = int(params["Output/weight"].shape[-1])
    embed = params.get("LabelEmbed/weight")
    hidden = params.get("Mapping0/weight")
    lrmul = _float(kw.take("mapping_lrmul", 0.1), "mapping_lrmul")
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
    group = None if group is None else _int(group, "mbstd_group_size")
    num_features = _int(kw.take("mbstd_num_features", 1), "mbstd_num_features")
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


# ----------------------------------------------------------------------------- name mapping

def _dense(a: np.ndarray) -> np.ndarray:
    _ndim(a, 2, "dense weight [in, out]")
    return a.T


def _conv(a: np.ndarray) -> np.ndarray:
    _ndim(a, 4, "conv weight [kh, kw, in, out]")
    return a.transpose(3, 2, 0, 1)


def _conv_flip(a: np.ndarray) -> np.ndarray:
    _ndim(a, 4, "conv weight [kh, kw, in, out]")
    return a[::-1, ::-1].transpose(3, 2, 0, 1)


def _same_array(a: np.ndarray) -> np.ndarray:
    return a


def _plus_one(a: np.ndarray) -> np.ndarray:
    return a + 1


def _first(a: np.ndarray) -> np.ndarray:
    _ndim(a, 4, "const [1, C, 4, 4]")
    return a[0]


def _noise(a: np.ndarray) -> np.ndarray:
    _ndim(a, 4, "noise [1, 1, R, R]")
    return a[0, 0]


def _ndim(a: np.ndarray, n: int, what: str) -> None:
    if a.ndim != n:
        raise OfficialFormatError(f"expected a {what}, got shape {a.shape}")


Source = tuple[str, Callable[[np.ndarray], np.ndarray]]


def _log2(r: str) -> int:
    return int(np.log2(int(r)))


def tf_generator_sources(key: str) -> Source | str:
    """Our generator state-dict key -> (TF variable, transform), or DERIVED."""
    if key.endswith("resample_filter"):
        return DERIVED
    if key == "mapping.w_avg":
        return "dlatent_avg", _same_array
    m = re.fullmatch(r"mapping\.(fc(\d+)|embed)\.(weight|bias)", key)
    if m:
        scope = f"mapping/Dense{m.group(2)}" if m.group(2) is not None else "mapping/LabelEmbed"
        return (f"{scope}/weight", _dense) if m.group(3) == "weight" else (f"{scope}/bias", _same_array)
    if key == "synthesis.b4.const":
        return "synthesis/4x4/Const/const", _first
    m = re.fullmatch(r"synthesis\.b(\d+)\.skip\.weight", key)
    if m:
        r = m.group(1)
        return f"synthesis/{r}x{r}/Skip/weight", _conv_flip
    m = re.fullmatch(r"synthesis\.b(\d+)\.(conv0|conv1|torgb)\.(weight|bias|affine\.weight|affine\.bias|"
                     r"noise\.const|noise\.strength)", key)
    if not m:
        raise OfficialFormatError(f"no TF variable is known for our generator tensor {key!r}")
    r, layer, var = m.groups()
    if r == "4" and layer == "conv1":
        scope, noise_idx = "4x4/Conv", 0
    elif layer == "conv0":
        scope, noise_idx = f"{r}x{r}/Conv0_up", 2 * _log2(r) - 5
    elif layer == "conv1":
        scope, noise_idx = f"{r}x{r}/Conv1", 2 * _log2(r) - 4
    else:
        scope, noise_idx = f"{r}x{r}/ToRGB", None
    scope = f"synthesis/{scope}"
    if var == "weight":
        return f"{scope}/weight", _conv_flip if layer == "conv0" else _conv
    if var == "bias":
        return f"{scope}/bias", _same_array
    if var == "affine.weight":
        return f"{scope}/mod_weight", _dense
    if var == "affine.bias":
        return f"{scope}/mod_bias", _plus_one
    if var == "noise.strength":
        return f"{scope}/noise_strength", _same_array
    return f"synthesis/noise{noise_idx}", _noise


def tf_discriminator_sources(key: str) -> Source | str:
    """Our discriminator state-dict key -> (TF variable, transform), or DERIVED."""
    if key.endswith("resample_filter"):
        return DERIVED
    m = re.fullmatch(r"mapping\.(fc(\d+)|embed)\.(weight|bias)", key)
    if m:
        scope = f"Mapping{m.group(2)}" if m.group(2) is not None else "LabelEmbed"
        return (f"{scope}/weight", _dense) if m.group(3) == "weight" else (f"{scope}/bias", _same_array)
    m = re.fullmatch(r"b4\.(conv|fc|out|fromrgb)\.(weight|bias)", key)
    if m:
        layer, var = m.groups()
        scope, fn = {"conv": ("4x4/Conv", _conv), "fc": ("4x4/Dense0", _dense), "out": ("Output", _dense),
                     "fromrgb": ("4x4/FromRGB", _conv)}[layer]
        return (f"{scope}/weight", fn) if var == "weight" else (f"{scope}/bias", _same_array)
    m = re.fullmatch(r"b(\d+)\.(fromrgb|conv0|conv1|skip)\.(weight|bias)", key)
    if not m:
        raise OfficialFormatError(f"no TF variable is known for our discriminator tensor {key!r}")
    r, layer, var = m.groups()
    scope = f"{r}x{r}/" + {"fromrgb": "FromRGB", "conv0": "Conv0", "conv1": "Conv1_down", "skip": "Skip"}[layer]
    return (f"{scope}/weight", _conv) if var == "weight" else (f"{scope}/bias", _same_array)


_TF_IGNORED = {"lod": "level of detail of progressive growing; unused by StyleGAN2"}


def tf_to_ours_state(params: dict[str, np.ndarray], module: nn.Module,
                     sources: Callable[[str], Source | str], what: str,
                     ignored: Iterable[str] = tuple(_TF_IGNORED)) -> dict[str, torch.Tensor]:
    """Fill every tensor of `module` from TF variables; every TF variable but `ignored` used once."""
    own = module.state_dict()
    state: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    used: set[str] = set()
    missing: list[str] = []
    for key, ref in own.items():
        src = sources(key)
        if src == DERIVED:
            state[key] = ref.clone()
            continue
        name, fn = src
        if name not in params:
            missing.append(f"{key} <- {name}")
            continue
        if name in used:
            raise OfficialFormatError(f"{what}: TF variable {name} would be used twice")
        used.add(name)
        try:
            arr = fn(np.asarray(params[name]))
        except OfficialFormatError as e:
            raise OfficialFormatError(f"{what}: {name}: {e}") from None
        state[key] = torch.from_numpy(np.array(arr, dtype=np.float32, order="C"))  # keeps 0-d shapes
        origin[key] = name
    unused = sorted(set(params) - used - set(ignored))
    if missing or unused:
        parts = []
        if unused:
            parts.append(f"{len(unused)} TF variable(s) not used: {unused[:6]}")
        if missing:
            parts.append(f"{len(missing)} tensor(s) of ours not filled: {missing[:6]}")
        raise OfficialFormatError(f"{what}: the TF variables do not fit the network built from its kwargs: "
                                  + "; ".join(parts))
    return _fit_state(module, state, origin, what)


def tf_network(path: Path, name: str, net: TFNetwork) -> OfficialNetwork:
    """Describe one TF network of a pickle as an importable OfficialNetwork."""
    what = f"{path.name} [{name}]"
    func = net.build_func_name
    if func in ("G_style", "D_basic"):  # TensorFlow StyleGAN (v1)
        from .official_tf1 import tf1_network
        return tf1_network(path, name, net)
    kind = "discriminator" if func.startswith("D_") else "generator"
    result = OfficialNetwork(name, kind, f"tensorflow {func}")
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
    except _MALFORMED as e:
        result.error = f"{what}: malformed TF network record ({type(e).__name__}: {e})"
        return result
    result.state_fn = lambda module: tf_to_ours_state(params, module, sources, what)
    return result
