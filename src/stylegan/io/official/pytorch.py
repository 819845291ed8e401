"""Official PyTorch pickles (stylegan2-ada-pytorch, stylegan3 repository) -> our modules.

StyleGAN2 networks (`networks_stylegan2`, both repositories) and the stylegan3 repository's
StyleGAN3 generators (`networks_stylegan3`: configs T and R; their discriminator is the StyleGAN2 one).

A snapshot is `pickle.dump` of a dict {'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'}
whose modules are `torch_utils.persistence` objects, read here as `PersistentObject` records
(meta = {type: 'class', version, module_src, class_name, state = the module's __dict__}).

Mapping: our StyleGAN2 modules use the official state-dict names except the noise input
(official `convN.noise_const` / `convN.noise_strength` are ours `convN.noise.const` /
`convN.noise.strength`); our StyleGAN3 modules use exactly the official names. Configs are built
from the official constructor kwargs; every official tensor must be consumed exactly once and every
tensor of ours filled, or the error lists both. For StyleGAN3 the layer attributes the official
constructor recorded (sampling rates, cutoffs, padding, ...) must also equal the schedule our
config gives, so a fork with another schedule is refused rather than run with the wrong filters.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...models import DiscriminatorConfig, GeneratorConfig, MappingConfig, StyleGAN3Options
from .common import (MALFORMED, Kwargs, OfficialFormatError, ForeignNetwork, ForeignFile, as_arch, as_filter,
                     as_float, as_int, fit_state, jsonable, merge_args, opt_float, opt_int)
from .records import PersistentObject, TorchModuleObject

__all__ = ["persistent_state_dict", "official_key_to_ours", "official_to_ours_state",
           "generator_config_from_kwargs", "stylegan3_config_from_kwargs", "discriminator_config_from_kwargs",
           "read_pytorch_pickle"]


_MODULE_TYPES = (PersistentObject, TorchModuleObject)


def persistent_state_dict(obj: PersistentObject | TorchModuleObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """The official module's state_dict() rebuilt from the recorded __dict__ trees.

    Parameters, then persistent buffers, then children (nn.Module.state_dict's order).
    """
    st = obj.state
    out: dict[str, torch.Tensor] = {}
    params = st.get("_parameters") or {}
    buffers = st.get("_buffers") or {}
    modules = st.get("_modules") or {}
    skip = st.get("_non_persistent_buffers_set") or set()
    for group, what in ((params, "parameter"), (buffers, "buffer")):
        if not isinstance(group, dict):
            raise OfficialFormatError(f"{prefix or obj.class_name}: {what}s are not a dict")
        for name, t in group.items():
            if t is None or (what == "buffer" and name in skip):
                continue
            if not isinstance(t, torch.Tensor):
                raise OfficialFormatError(f"{prefix}{name}: {what} is a {type(t).__name__}, not a tensor")
            out[f"{prefix}{name}"] = t
    if not isinstance(modules, dict):
        raise OfficialFormatError(f"{prefix or obj.class_name}: submodules are not a dict")
    for name, child in modules.items():
        if child is None:
            continue
        if not isinstance(child, _MODULE_TYPES):
            raise OfficialFormatError(f"{prefix}{name}: submodule is a {type(child).__name__}")
        out.update(persistent_state_dict(child, f"{prefix}{name}."))
    return out


def _tree_classes(obj: PersistentObject | TorchModuleObject) -> set[str]:
    names = {obj.short_class}
    for child in (obj.state.get("_modules") or {}).values():
        if isinstance(child, _MODULE_TYPES):
            names |= _tree_classes(child)
    return names


_G_CLASSES = {"Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer",
              "ToRGBLayer", "FullyConnectedLayer", "Conv2dLayer"}
_D_CLASSES = {"Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStdLayer",
              "Conv2dLayer", "FullyConnectedLayer", "MappingNetwork"}
_G3_CLASSES = {"Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisInput", "SynthesisLayer",
               "FullyConnectedLayer"}
_SG3_MARKERS = ("SynthesisInput",)


def _is_stylegan3(obj: PersistentObject) -> bool:
    if "stylegan3" in obj.class_name:
        return True
    if any(m in _tree_classes(obj) for m in _SG3_MARKERS):
        return True
    # The embedded source is only searched as text, never compiled.
    return any(f"class {m}" in obj.module_src for m in _SG3_MARKERS)


def official_key_to_ours(key: str) -> str:
    """Official state-dict key -> ours (the noise input is a submodule here)."""
    for official, ours in ((".noise_const", ".noise.const"), (".noise_strength", ".noise.strength")):
        if key.endswith(official):
            return key[: -len(official)] + ours
    return key


def official_to_ours_state(official: dict[str, torch.Tensor], module: nn.Module, what: str = "network") -> dict[str, torch.Tensor]:
    """Official PyTorch state dict -> ours for `module`; every key consumed once, every one filled."""
    state: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in official.items():
        ours = official_key_to_ours(key)
        if ours in state:
            raise OfficialFormatError(f"{what}: official keys {origin[ours]!r} and {key!r} both map to {ours!r}")
        state[ours] = value
        origin[ours] = key
    return fit_state(module, state, origin, what)


_HARMLESS_G = {
    "fp16_channels_last": "memory layout only",
    "channels_last": "memory layout only",
    "fused_modconv_default": "fused and unfused modulated convolutions compute the same result",
}


def generator_config_from_kwargs(kwargs: dict, args: tuple = ()) -> tuple[GeneratorConfig, list[str]]:
    """Official StyleGAN2 Generator constructor kwargs -> our GeneratorConfig (+ notes).

    Accepts both layouts: stylegan2-ada-pytorch (`synthesis_kwargs={...}`) and the stylegan3
    repository (synthesis kwargs at the top level).
    """
    notes: list[str] = []
    kwargs = merge_args(args, kwargs, ["z_dim", "c_dim", "w_dim", "img_resolution", "img_channels",
                                        "mapping_kwargs", "synthesis_kwargs"], "Generator")
    top = Kwargs(kwargs, "G kwargs", notes)
    missing = [k for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels") if k not in top.kw]
    if missing:
        raise OfficialFormatError(f"Generator kwargs lack {missing}")
    z_dim = as_int(top.take("z_dim"), "z_dim")
    c_dim = as_int(top.take("c_dim"), "c_dim")
    w_dim = as_int(top.take("w_dim"), "w_dim", 1)
    res = as_int(top.take("img_resolution"), "img_resolution", 4)
    channels = as_int(top.take("img_channels"), "img_channels", 1)
    mapping = Kwargs(top.take("mapping_kwargs", {}), "G mapping_kwargs", notes)
    synth_kw = dict(top.take("synthesis_kwargs", {}) or {})
    overlap = set(synth_kw) & set(top.kw)
    if overlap:
        raise OfficialFormatError(f"Generator kwargs give {sorted(overlap)} twice")
    synth = Kwargs({**synth_kw, **top.kw}, "G synthesis kwargs", notes)
    top.kw.clear()

    mcfg = MappingConfig(
        num_layers=as_int(mapping.take("num_layers", 8), "mapping num_layers"),
        lr_multiplier=as_float(mapping.take("lr_multiplier", 0.01), "mapping lr_multiplier"),
        w_avg_beta=opt_float(mapping.take("w_avg_beta", 0.995), "mapping w_avg_beta"),
        embed_features=opt_int(mapping.take("embed_features"), "mapping embed_features", 1),
        layer_features=opt_int(mapping.take("layer_features"), "mapping layer_features", 1),
    )
    mapping.require("activation", "lrelu", "the mapping activation")
    mapping.finish()

    fields = dict(
        channel_base=as_int(synth.take("channel_base", 32768), "channel_base", 1),
        channel_max=as_int(synth.take("channel_max", 512), "channel_max", 1),
        num_fp16_res=as_int(synth.take("num_fp16_res", 0), "num_fp16_res"),
        architecture=as_arch(synth.take("architecture", "skip"), "architecture"),
        resample_filter=as_filter(synth.take("resample_filter", [1, 3, 3, 1]), "resample_filter"),
        conv_clamp=opt_float(synth.take("conv_clamp"), "conv_clamp"),
        use_noise=bool(synth.take("use_noise", True)),
    )
    synth.require("kernel_size", 3, "the synthesis kernel size")
    synth.require("activation", "lrelu", "the synthesis activation")
    for key, why in _HARMLESS_G.items():
        synth.harmless(key, why)
    synth.finish()
    try:
        cfg = GeneratorConfig(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=res, img_channels=channels,
                              mapping=mcfg, version=2, **fields)
    except (TypeError, ValueError) as e:
        raise OfficialFormatError(f"Generator kwargs: {e}") from None
    return cfg, notes


def stylegan3_config_from_kwargs(kwargs: dict, args: tuple = ()) -> tuple[GeneratorConfig, list[str]]:
    """Official StyleGAN3 Generator constructor kwargs (`training.networks_stylegan3`) -> our config.

    The synthesis and layer keywords sit at the top level beside the mapping_kwargs; defaults are
    the official constructors' (num_fp16_res 4, conv_clamp 256, mapping: 2 layers, w_avg decay
    0.998), since a pickle records only the keywords train.py passed.
    """
    notes: list[str] = []
    kwargs = merge_args(args, kwargs, ["z_dim", "c_dim", "w_dim", "img_resolution", "img_channels",
                                        "mapping_kwargs"], "Generator")
    top = Kwargs(kwargs, "G kwargs", notes)
    missing = [k for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels") if k not in top.kw]
    if missing:
        raise OfficialFormatError(f"Generator kwargs lack {missing}")
    base = dict(z_dim=as_int(top.take("z_dim"), "z_dim", 1), c_dim=as_int(top.take("c_dim"), "c_dim"),
                w_dim=as_int(top.take("w_dim"), "w_dim", 1),
                img_resolution=as_int(top.take("img_resolution"), "img_resolution", 4),
                img_channels=as_int(top.take("img_channels"), "img_channels", 1))
    mapping = Kwargs(top.take("mapping_kwargs", {}), "G mapping_kwargs", notes)
    mcfg = MappingConfig(
        num_layers=as_int(mapping.take("num_layers", 2), "mapping num_layers", 1),
        lr_multiplier=as_float(mapping.take("lr_multiplier", 0.01), "mapping lr_multiplier"),
        w_avg_beta=as_float(mapping.take("w_avg_beta", 0.998), "mapping w_avg_beta"))
    mapping.finish()
    d = StyleGAN3Options()
    v3 = dict(
        num_layers=as_int(top.take("num_layers", d.num_layers), "num_layers", 1),
        num_critical=as_int(top.take("num_critical", d.num_critical), "num_critical"),
        first_cutoff=as_float(top.take("first_cutoff", d.first_cutoff), "first_cutoff"),
        first_stopband=as_float(top.take("first_stopband", d.first_stopband), "first_stopband"),
        last_stopband_rel=as_float(top.take("last_stopband_rel", d.last_stopband_rel), "last_stopband_rel"),
        margin_size=as_int(top.take("margin_size", d.margin_size), "margin_size"),
        output_scale=as_float(top.take("output_scale", d.output_scale), "output_scale"),
        conv_kernel=as_int(top.take("conv_kernel", d.conv_kernel), "conv_kernel", 1),
        filter_size=as_int(top.take("filter_size", d.filter_size), "filter_size", 1),
        lrelu_upsampling=as_int(top.take("lrelu_upsampling", d.lrelu_upsampling), "lrelu_upsampling", 1),
        use_radial_filters=bool(top.take("use_radial_filters", d.use_radial_filters)),
        magnitude_ema_beta=as_float(top.take("magnitude_ema_beta", d.magnitude_ema_beta), "magnitude_ema_beta"),
    )
    fields = dict(
        channel_base=as_int(top.take("channel_base", 32768), "channel_base", 1),
        channel_max=as_int(top.take("channel_max", 512), "channel_max", 1),
        num_fp16_res=as_int(top.take("num_fp16_res", 4), "num_fp16_res"),
        conv_clamp=opt_float(top.take("conv_clamp", 256), "conv_clamp"),
    )
    top.finish()
    try:
        cfg = GeneratorConfig(**base, mapping=mcfg, version=3, v3=StyleGAN3Options(**v3), **fields)
    except (TypeError, ValueError) as e:
        raise OfficialFormatError(f"Generator kwargs: {e}") from None
    return cfg, notes


# Attributes each official SynthesisLayer records, against our schedule's (ints exact, floats to 1e-9).
_SG3_LAYER_ATTRS = ("in_channels", "out_channels", "in_sampling_rate", "out_sampling_rate", "tmp_sampling_rate",
                    "in_cutoff", "out_cutoff", "in_half_width", "out_half_width", "conv_kernel", "up_factor",
                    "down_factor", "up_taps", "down_taps", "down_radial", "is_torgb", "is_critically_sampled")


def _scalar(v: Any) -> Any:
    if isinstance(v, np.ndarray) and v.size >= 1:
        v = v.reshape(-1)[0]  # in_size / out_size are [w, h] arrays of equal entries
    return v.item() if isinstance(v, np.generic) else v


def _check_stylegan3_schedule(obj: PersistentObject, cfg: GeneratorConfig) -> None:
    """The layers the pickle holds, and what their constructor recorded, against our schedule."""
    from ...models.stylegan3 import synthesis_schedule

    synthesis = (obj.state.get("_modules") or {}).get("synthesis")
    if synthesis is None:
        raise OfficialFormatError("the StyleGAN3 generator has no synthesis network")
    modules = synthesis.state.get("_modules") or {}
    spec_in, specs = synthesis_schedule(cfg)
    names = [s.name for s in specs]
    theirs = [n for n in modules if n != "input"]
    if theirs != names:
        raise OfficialFormatError(f"its synthesis layers {theirs[:4]}... differ from the ones its kwargs give "
                                  f"{names[:4]}... (a modified schedule?)")
    for spec in specs:
        st = modules[spec.name].state
        for attr in _SG3_LAYER_ATTRS + ("padding", "in_size", "out_size"):
            if attr not in st:
                continue
            recorded, ours = _scalar(st[attr]), getattr(spec, attr)
            if attr == "padding":
                same = [int(v) for v in recorded] == list(ours)
            elif isinstance(ours, bool):
                same = bool(recorded) == ours
            else:
                same = abs(float(recorded) - float(ours)) <= 1e-9 * max(1.0, abs(float(ours)))
            if not same:
                raise OfficialFormatError(f"synthesis.{spec.name}.{attr} = {recorded!r} in the pickle, but its "
                                          f"kwargs give {ours!r} (a modified StyleGAN3?)")


def discriminator_config_from_kwargs(kwargs: dict, args: tuple = ()) -> tuple[DiscriminatorConfig, list[str]]:
    """Official StyleGAN2 Discriminator constructor kwargs -> our DiscriminatorConfig (+ notes)."""
    notes: list[str] = []
    kwargs = merge_args(args, kwargs, ["c_dim", "img_resolution", "img_channels", "architecture", "channel_base",
                                        "channel_max", "num_fp16_res", "conv_clamp", "cmap_dim", "block_kwargs",
                                        "mapping_kwargs", "epilogue_kwargs"], "Discriminator")
    top = Kwargs(kwargs, "D kwargs", notes)
    missing = [k for k in ("c_dim", "img_resolution", "img_channels") if k not in top.kw]
    if missing:
        raise OfficialFormatError(f"Discriminator kwargs lack {missing}")
    block = Kwargs(top.take("block_kwargs", {}), "D block_kwargs", notes)
    mapping = Kwargs(top.take("mapping_kwargs", {}), "D mapping_kwargs", notes)
    epi = Kwargs(top.take("epilogue_kwargs", {}), "D epilogue_kwargs", notes)

    resample_filter = as_filter(block.take("resample_filter", [1, 3, 3, 1]), "resample_filter")
    block.require("activation", "lrelu", "the discriminator activation")
    block.harmless("fp16_channels_last", "memory layout only")
    block.harmless("freeze_layers", "affects training only")
    block.finish()
    mcfg = MappingConfig(
        num_layers=as_int(mapping.take("num_layers", 8), "D mapping num_layers"),
        lr_multiplier=as_float(mapping.take("lr_multiplier", 0.01), "D mapping lr_multiplier"),
        w_avg_beta=None,
        embed_features=opt_int(mapping.take("embed_features"), "D mapping embed_features", 1),
        layer_features=opt_int(mapping.take("layer_features"), "D mapping layer_features", 1),
    )
    mapping.require("activation", "lrelu", "the label mapping activation")
    mapping.finish()
    mbstd_group = epi.take("mbstd_group_size", 4)
    fields = dict(
        mbstd_group_size=None if mbstd_group is None else as_int(mbstd_group, "mbstd_group_size", 1),
        mbstd_num_channels=as_int(epi.take("mbstd_num_channels", 1), "mbstd_num_channels"),
    )
    epi.require("activation", "lrelu", "the epilogue activation")
    epi.finish()
    try:
        cfg = DiscriminatorConfig(
            c_dim=as_int(top.take("c_dim"), "c_dim"),
            img_resolution=as_int(top.take("img_resolution"), "img_resolution", 4),
            img_channels=as_int(top.take("img_channels"), "img_channels", 1),
            version=2,
            architecture=as_arch(top.take("architecture", "resnet"), "architecture"),
            channel_base=as_int(top.take("channel_base", 32768), "channel_base", 1),
            channel_max=as_int(top.take("channel_max", 512), "channel_max", 1),
            num_fp16_res=as_int(top.take("num_fp16_res", 0), "num_fp16_res"),
            conv_clamp=opt_float(top.take("conv_clamp"), "conv_clamp"),
            cmap_dim=opt_int(top.take("cmap_dim"), "cmap_dim", 1),
            resample_filter=resample_filter,
            mapping=mcfg,
            **fields,
        )
    except (TypeError, ValueError) as e:
        raise OfficialFormatError(f"Discriminator kwargs: {e}") from None
    top.finish()
    return cfg, notes


def _cross_check(obj: PersistentObject, cfg: Any, names: tuple[str, ...]) -> None:
    """Attributes the official constructor stored must agree with the config built from its kwargs."""
    for name in names:
        if name in obj.state:
            value = obj.state[name]
            if isinstance(value, (int, np.integer)) and int(value) != getattr(cfg, name):
                raise OfficialFormatError(f"{obj.short_class}.{name}={value} contradicts its init kwargs "
                                          f"({getattr(cfg, name)})")


def _pytorch_network(path: Path, name: str, obj: PersistentObject) -> ForeignNetwork:
    kind = {"Generator": "generator", "Discriminator": "discriminator"}[obj.short_class]
    net = ForeignNetwork(name, kind, obj.class_name)
    what = f"{path.name} [{name}]"
    try:
        sg3 = _is_stylegan3(obj)
        if sg3 and kind != "generator":
            raise OfficialFormatError("a StyleGAN3 discriminator does not exist officially (the stylegan3 "
                                      "repository trains the StyleGAN2 one); refused rather than guessed")
        expected = _G3_CLASSES if sg3 else _G_CLASSES if kind == "generator" else _D_CLASSES
        unknown = sorted(_tree_classes(obj) - expected)
        if unknown:
            which = "StyleGAN3" if sg3 else "StyleGAN2"
            raise OfficialFormatError(
                f"contains modules of classes {unknown} that the official {which} {obj.short_class} does not "
                f"have (a modified fork?); refused rather than guessed")
        init_kwargs = obj.state.get("_init_kwargs", {})
        init_args = obj.state.get("_init_args", ())
        if sg3:
            net.cfg, net.notes = stylegan3_config_from_kwargs(init_kwargs, init_args)
            _cross_check(obj, net.cfg, ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "num_ws"))
            _check_stylegan3_schedule(obj, net.cfg)
        elif kind == "generator":
            net.cfg, net.notes = generator_config_from_kwargs(init_kwargs, init_args)
            _cross_check(obj, net.cfg, ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"))
        else:
            net.cfg, net.notes = discriminator_config_from_kwargs(init_kwargs, init_args)
            _cross_check(obj, net.cfg, ("c_dim", "img_resolution", "img_channels"))
        official = persistent_state_dict(obj)
    except OfficialFormatError as e:
        net.error = f"{what}: {e}"
        return net
    except MALFORMED as e:
        net.error = f"{what}: malformed network record ({type(e).__name__}: {e})"
        return net
    net.state_fn = lambda module: official_to_ours_state(official, module, what)
    return net


def read_pytorch_pickle(path: Path, data: dict) -> ForeignFile:
    """Describe the networks of an unpickled official PyTorch snapshot dict (nothing built yet)."""
    result = ForeignFile(path, "pytorch", {})
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, PersistentObject) and value.short_class in ("Generator", "Discriminator"):
            result.networks[key] = _pytorch_network(path, key, value)
        elif isinstance(value, PersistentObject) and value.short_class == "AugmentPipe":
            p = (value.state.get("_buffers") or {}).get("p")
            if isinstance(p, torch.Tensor) and p.numel() == 1:
                result.info["augment_pipe_p"] = float(p.reshape(()))
        elif key == "training_set_kwargs" and isinstance(value, dict):
            result.info["training_set_kwargs"] = jsonable(value)
        elif value is not None:
            result.notes.append(f"ignored entry {key!r} ({getattr(value, 'class_name', type(value).__name__)})")
    result.info["networks"] = {k: v.source_class for k, v in result.networks.items()}
    return result


