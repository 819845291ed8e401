"""rosinality/stylegan2-pytorch checkpoints in and out, read without executing anything.

Their train.py saves `torch.save({"g", "d", "g_ema", "g_optim", "d_optim", "args", "ada_aug_p"})`
(`args` an argparse.Namespace); convert_weight.py saves {"g_ema", "latent_avg"}; some tools save a
bare generator state dict. We open every form with `torch.load(weights_only=True)`, whose
unpickler builds only tensors and plain containers, with exactly `argparse.Namespace` added as
plain data for the length of that one call (`torch.serialization.safe_globals`, a context
manager: nothing global is left changed). Anything else in the file (a pickled `os.system` call,
a custom class) is refused before it is looked up.

Their networks are StyleGAN2 with a skip generator and a resnet discriminator, the architecture of
ours (and of NVIDIA's port), under other names:

    theirs (Generator)                          ours (Generator)
    style.{i+1}.weight / bias                   mapping.fc{i}.weight / bias      (index 0: PixelNorm)
    input.input [1, C, 4, 4]                    synthesis.b4.const [C, 4, 4]
    conv1 / to_rgb1                             synthesis.b4.conv1 / torgb
    convs.{2k} / convs.{2k+1} / to_rgbs.{k}     synthesis.b{8*2^k}.conv0 / conv1 / torgb
      .conv.weight [1, O, I, k, k]                .weight [O, I, k, k]
      .conv.modulation.weight / bias              .affine.weight / bias (their bias holds the +1 init)
      .noise.weight [1]                           .noise.strength []
      .activate.bias / to_rgb .bias [1, 3, 1, 1]  .bias [O] / [3]
    noises.noise_{j} [1, 1, R, R]               .noise.const [R, R]  (j: 0 = b4.conv1, then in order)
    latent_avg [style_dim]                      mapping.w_avg
    *.blur.kernel, *.upsample.kernel            derived: resample_filter (theirs * up^2)

    theirs (Discriminator)                      ours (resnet Discriminator)
    convs.0.0.weight / convs.0.1.bias           b{size}.fromrgb.weight / bias
    convs.{j}.conv1.0.weight / .1.bias          b{size/2^(j-1)}.conv0.weight / bias
    convs.{j}.conv2.1.weight / .2.bias          ...conv1.weight / bias   (conv2.0.kernel: derived)
    convs.{j}.skip.1.weight                     ...skip.weight           (skip.0.kernel: derived)
    final_conv.0.weight / .1.bias               b4.conv.weight / bias
    final_linear.0 / final_linear.1             b4.fc / b4.out

Semantics that carry over exactly: their `randomize_noise=False` is our noise_mode='const'; their
`truncation=psi, truncation_latent=mean` applies to every layer (our psi with cutoff=None and
w_avg = mean); their `inject_index=k` mixing takes the first k ws from the first latent.
Their equalized-lr layers, fused lrelu (bias, then lrelu * sqrt 2), blur filters and minibatch
stddev (group 4, 1 channel) are the official ones, so the weights copy without rescaling.

Channel tables: theirs is a dict {4..32: 512, 64: 256 cm, 128: 128 cm, ...}; ours is
min(channel_base / res, channel_max). The table is read from the tensors and mapped to the
(channel_base, channel_max) that reproduces it exactly, or refused naming the mismatch.
"""
from __future__ import annotations

import argparse
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models import DiscriminatorConfig, Generator, GeneratorConfig, MappingConfig
from ..models.lod import log2_resolution
from .checkpoint import CheckpointError, write_atomic
from .official.common import ForeignNetwork, ForeignFile, fit_state, jsonable

__all__ = ["RosinalityFormatError", "is_rosinality_state", "read_rosinality", "save_rosinality", "rosinality_state",
           "channel_table", "stock_channel_multiplier", "W_AVG_SAMPLES", "W_AVG_SEED"]

W_AVG_SAMPLES = 4096  # their Generator.mean_latent(4096)
W_AVG_SEED = 0
_STOCK_TOP = 512  # their table: 512 channels up to 32 px, then 256 * cm at 64 px, halving per octave


class RosinalityFormatError(CheckpointError):
    """A rosinality checkpoint is refused (unsafe, damaged) or does not fit our networks."""


# ----------------------------------------------------------------------------------- reading

def _torch_load_safely(path: Path) -> Any:
    """torch.load with its weights-only unpickler; argparse.Namespace is the one extra type allowed."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message names the refused global first ("Unsupported global: GLOBAL posix.system").
        detail = next((line.strip() for line in str(e).splitlines() if "Unsupported" in line or "GLOBAL" in line),
                      str(e).splitlines()[0] if str(e) else "unknown reason")
        raise RosinalityFormatError(
            f"refused to load {path}: it needs more than tensors and plain data to unpickle ({detail}); "
            f"nothing from it was run. Only rosinality/stylegan2-pytorch checkpoints (tensors, dicts, "
            f"numbers and an argparse.Namespace of options) are accepted") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise RosinalityFormatError(f"{path} is damaged or not a torch.save file ({type(e).__name__}: "
                                    f"{str(e).splitlines()[0] if str(e) else ''})") from None


def is_rosinality_state(sd: Any) -> bool:
    """A generator or discriminator state dict in their key layout."""
    return isinstance(sd, dict) and (("style.1.weight" in sd and "input.input" in sd)
                                     or ("final_linear.0.weight" in sd and "convs.0.0.weight" in sd))


def _tensor(sd: dict, key: str, what: str) -> torch.Tensor:
    t = sd.get(key)
    if not isinstance(t, torch.Tensor):
        raise RosinalityFormatError(f"{what}: missing tensor {key!r}")
    return t


def channel_table(resolutions: dict[int, int], what: str) -> tuple[int, int]:
    """(channel_base, channel_max) whose min(base // res, max) reproduces `resolutions` exactly."""
    top = max(resolutions.values())
    for base in sorted({c * r for r, c in resolutions.items()}):
        if all(min(base // r, top) == c for r, c in resolutions.items()):
            return base, top
    table = ", ".join(f"{r}: {c}" for r, c in sorted(resolutions.items()))
    raise RosinalityFormatError(f"{what}: channel table {{{table}}} cannot be written as min(channel_base / res, "
                                f"channel_max) (the rule our networks use); not supported")


def stock_channel_multiplier(channels: dict[int, int]) -> int | None:
    """Their `channel_multiplier` whose stock table {4..32: 512, res >= 64: 16384 cm / res} is `channels`.

    Only 2 (their default) and 1 fit under our rule: cm >= 3 puts more than 512 channels at 64 px.
    """
    for cm in (2, 1):
        if all(c == (_STOCK_TOP if r <= 32 else 16384 * cm // r) for r, c in channels.items()):
            return cm
    return None


def _generator_config(sd: dict, what: str) -> tuple[GeneratorConfig, dict[int, int]]:
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in sd:
        n_mlp += 1
    if n_mlp == 0:
        raise RosinalityFormatError(f"{what}: no mapping layers (style.1.weight)")
    style_dim = _tensor(sd, "style.1.weight", what).shape[1]
    const = _tensor(sd, "input.input", what)
    if const.ndim != 4 or tuple(const.shape[2:]) != (4, 4):
        raise RosinalityFormatError(f"{what}: input.input has shape {tuple(const.shape)}, expected [1, C, 4, 4]")
    n_up = 0
    while f"to_rgbs.{n_up}.conv.weight" in sd:
        n_up += 1
    size = 4 << n_up
    channels = {4: int(const.shape[1])}
    for k in range(n_up):
        w = _tensor(sd, f"convs.{2 * k}.conv.weight", what)
        if w.ndim != 5:
            raise RosinalityFormatError(f"{what}: convs.{2 * k}.conv.weight has shape {tuple(w.shape)}, "
                                        f"expected [1, out, in, k, k]")
        channels[8 << k] = int(w.shape[1])
    img_channels = int(_tensor(sd, "to_rgb1.conv.weight", what).shape[1])
    base, cmax = channel_table(channels, what)
    cfg = GeneratorConfig(z_dim=style_dim, w_dim=style_dim, img_resolution=size, img_channels=img_channels,
                          mapping=MappingConfig(num_layers=n_mlp), architecture="skip",
                          channel_base=base, channel_max=cmax)
    return cfg, channels


def _discriminator_config(sd: dict, what: str) -> DiscriminatorConfig:
    n_blocks = 0
    while f"convs.{n_blocks + 1}.conv1.0.weight" in sd:
        n_blocks += 1
    size = 4 << n_blocks
    fromrgb = _tensor(sd, "convs.0.0.weight", what)
    channels = {size: int(fromrgb.shape[0])}
    for j in range(1, n_blocks + 1):
        channels[size >> j] = int(_tensor(sd, f"convs.{j}.conv2.1.weight", what).shape[0])
    base, cmax = channel_table(channels, what)
    return DiscriminatorConfig(img_resolution=size, img_channels=int(fromrgb.shape[1]), architecture="resnet",
                               channel_base=base, channel_max=cmax, mbstd_group_size=4, mbstd_num_channels=1)


def _generator_key_map(cfg: GeneratorConfig) -> dict[str, str]:
    """Their generator key -> ours (tensors that copy, up to a reshape)."""
    m = {f"style.{i + 1}.{p}": f"mapping.fc{i}.{p}" for i in range(cfg.mapping.num_layers) for p in ("weight", "bias")}
    m["input.input"] = "synthesis.b4.const"
    m["latent_avg"] = "mapping.w_avg"  # not in their state dict: the checkpoint's top-level entry

    def layer(theirs: str, ours: str, noise: int | None) -> None:
        m[f"{theirs}.conv.weight"] = f"{ours}.weight"
        m[f"{theirs}.conv.modulation.weight"] = f"{ours}.affine.weight"
        m[f"{theirs}.conv.modulation.bias"] = f"{ours}.affine.bias"
        if noise is None:  # to_rgb
            m[f"{theirs}.bias"] = f"{ours}.bias"
            return
        m[f"{theirs}.noise.weight"] = f"{ours}.noise.strength"
        m[f"{theirs}.activate.bias"] = f"{ours}.bias"
        m[f"noises.noise_{noise}"] = f"{ours}.noise.const"

    layer("conv1", "synthesis.b4.conv1", 0)
    layer("to_rgb1", "synthesis.b4.torgb", None)
    for k in range(log2_resolution(cfg.img_resolution) - 2):
        res = 8 << k
        layer(f"convs.{2 * k}", f"synthesis.b{res}.conv0", 2 * k + 1)
        layer(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", 2 * k + 2)
        layer(f"to_rgbs.{k}", f"synthesis.b{res}.torgb", None)
    return m


def _discriminator_key_map(cfg: DiscriminatorConfig) -> dict[str, str]:
    size = cfg.img_resolution
    m = {"convs.0.0.weight": f"b{size}.fromrgb.weight", "convs.0.1.bias": f"b{size}.fromrgb.bias",
         "final_conv.0.weight": "b4.conv.weight", "final_conv.1.bias": "b4.conv.bias",
         "final_linear.0.weight": "b4.fc.weight", "final_linear.0.bias": "b4.fc.bias",
         "final_linear.1.weight": "b4.out.weight", "final_linear.1.bias": "b4.out.bias"}
    for j in range(1, log2_resolution(size) - 1):
        b = f"b{size >> (j - 1)}"
        m.update({f"convs.{j}.conv1.0.weight": f"{b}.conv0.weight", f"convs.{j}.conv1.1.bias": f"{b}.conv0.bias",
                  f"convs.{j}.conv2.1.weight": f"{b}.conv1.weight", f"convs.{j}.conv2.2.bias": f"{b}.conv1.bias",
                  f"convs.{j}.skip.1.weight": f"{b}.skip.weight"})
    return m


def _filters(module: nn.Module, kind: str) -> dict[str, torch.Tensor]:
    """Their stored blur kernels for `module`: our normalized filter, times up^2 where they upsample."""
    if kind == "generator":
        f = module.synthesis.b4.conv1.resample_filter * 4  # [4, 4]
        out = {}
        for k in range(log2_resolution(module.cfg.img_resolution) - 2):
            out[f"convs.{2 * k}.conv.blur.kernel"] = f
            out[f"to_rgbs.{k}.upsample.kernel"] = f
        return out
    size = module.cfg.img_resolution
    f = getattr(module, f"b{size}").conv1.resample_filter
    return {f"convs.{j}.{p}.kernel": f for j in range(1, log2_resolution(size) - 1) for p in ("conv2.0", "skip.0")}


def _to_ours(sd: dict[str, torch.Tensor], module: nn.Module, kind: str, what: str) -> dict[str, torch.Tensor]:
    """Their state dict -> ours for `module`; filters checked against ours, every tensor used once."""
    own = module.state_dict()
    key_map = _generator_key_map(module.cfg) if kind == "generator" else _discriminator_key_map(module.cfg)
    filters = _filters(module, kind)
    state: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in sd.items():
        if key in filters:
            if value.shape != filters[key].shape or not torch.allclose(value.float(), filters[key], atol=1e-6):
                raise RosinalityFormatError(f"{what}: {key} is not the [1, 3, 3, 1] blur filter this "
                                            f"architecture uses; not supported")
            continue
        ours = key_map.get(key, key)  # an unknown key is reported by fit_state as unused
        if ours in own and value.numel() == own[ours].numel():
            value = value.reshape(own[ours].shape)
        state[ours] = value
        origin[ours] = key
    for key, ref in own.items():
        if key.endswith("resample_filter"):
            state[key] = ref.clone()
    return fit_state(module, state, origin, what, source="rosinality")


def _mean_w(module: Generator, samples: int = W_AVG_SAMPLES, seed: int = W_AVG_SEED) -> torch.Tensor:
    """Their mean_latent: the mean of `samples` mapped z, from a seeded generator."""
    z = torch.randn([samples, module.cfg.z_dim], generator=torch.Generator().manual_seed(seed))  # [S, z_dim]
    with torch.no_grad():
        return module.mapping(z)[:, 0].mean(0)  # [w_dim]


def _network(path: Path, name: str, sd: dict, kind: str, latent_avg: Any) -> ForeignNetwork:
    what = f"{path.name} [{name}]"
    net = ForeignNetwork(name, kind, "rosinality " + ("Generator" if kind == "generator" else "Discriminator"))
    try:
        bad = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
        if bad:
            raise RosinalityFormatError(f"{what}: entries that are not tensors: {bad[:4]}")
        if kind == "generator":
            net.cfg, channels = _generator_config(sd, what)
            if stock_channel_multiplier(channels) is None:
                net.notes.append(f"channel table {channels} is not their stock table for any channel_multiplier; "
                                 f"read as channel_base={net.cfg.channel_base}, channel_max={net.cfg.channel_max}")
        else:
            net.cfg = _discriminator_config(sd, what)
    except RosinalityFormatError as e:
        net.error = str(e)
        return net
    except (TypeError, ValueError, IndexError, AttributeError) as e:
        net.error = f"{what}: malformed state dict ({type(e).__name__}: {e})"
        return net
    if kind == "discriminator":
        net.state_fn = lambda module: _to_ours(sd, module, kind, what)
        return net
    have_avg = isinstance(latent_avg, torch.Tensor) and latent_avg.numel() == net.cfg.w_dim
    if not have_avg:
        net.notes.append(f"w_avg computed as the mean of {W_AVG_SAMPLES} mapped z (seed {W_AVG_SEED}): the file "
                         f"has no latent_avg")

    def state_fn(module: nn.Module) -> dict[str, torch.Tensor]:
        avg = latent_avg.reshape(-1) if have_avg else torch.zeros(net.cfg.w_dim)  # [w_dim]
        state = _to_ours({**sd, "latent_avg": avg}, module, kind, what)
        if not have_avg:
            module.load_state_dict(state, strict=True)
            state["mapping.w_avg"] = _mean_w(module)
        return state

    net.state_fn = state_fn
    return net


def read_rosinality(path: str | Path) -> ForeignFile:
    """Describe the networks of a rosinality checkpoint (nothing from it is executed)."""
    path = Path(path)
    data = _torch_load_safely(path)
    if is_rosinality_state(data):  # a bare state dict
        data = {"g_ema" if "style.1.weight" in data else "d": data}
    if not isinstance(data, dict) or not any(is_rosinality_state(data.get(k)) for k in ("g_ema", "g", "d")):
        keys = sorted(map(str, data))[:8] if isinstance(data, dict) else type(data).__name__
        raise RosinalityFormatError(f"{path} is a torch.save file but not a rosinality/stylegan2-pytorch "
                                    f"checkpoint (expected 'g_ema', 'g' or 'd' state dicts; found {keys})")
    result = ForeignFile(path, "rosinality", {})
    latent_avg = data.get("latent_avg")
    for theirs, ours, kind in (("g", "G", "generator"), ("d", "D", "discriminator"), ("g_ema", "G_ema", "generator")):
        if isinstance(data.get(theirs), dict):
            result.networks[ours] = _network(path, ours, data[theirs], kind, latent_avg if theirs == "g_ema" else None)
    args = data.get("args")
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    if isinstance(args, dict):
        result.info["args"] = jsonable(args)
        _check_args(args, result, path)
    if isinstance(data.get("ada_aug_p"), (int, float)):
        result.info["augment_pipe_p"] = float(data["ada_aug_p"])
    if "G_ema" in result.networks and result.networks["G_ema"].error is None:
        result.info["w_avg"] = "latent_avg" if isinstance(latent_avg, torch.Tensor) else (
            f"computed: mean of {W_AVG_SAMPLES} mapped z, seed {W_AVG_SEED}")
    result.notes += [f"ignored entry {k!r}" for k in data if k not in ("g", "d", "g_ema", "latent_avg", "args",
                                                                       "ada_aug_p")]
    result.info["networks"] = {k: v.source_class for k, v in result.networks.items()}
    return result


def _check_args(args: dict, result: ForeignFile, path: Path) -> None:
    """Their training options must agree with what the tensors say (a mismatch means a modified model)."""
    for name, net in result.networks.items():
        if net.kind != "generator" or net.cfg is None:
            continue
        for arg, have in (("size", net.cfg.img_resolution), ("latent", net.cfg.w_dim),
                          ("n_mlp", net.cfg.mapping.num_layers)):
            if arg in args and args[arg] != have:
                net.error = (f"{path.name} [{name}]: args.{arg}={args[arg]!r} but the tensors say {have}; "
                             f"refused rather than guessed")


# ----------------------------------------------------------------------------------- writing

def _generator_refusal(cfg: GeneratorConfig) -> str | None:
    checks = [
        (cfg.version == 2 and not cfg.growing, "only StyleGAN2 networks have a rosinality equivalent"),
        (cfg.architecture == "skip", f"architecture {cfg.architecture!r}: their generator is 'skip' only"),
        (cfg.c_dim == 0, "conditional networks: their generator takes no labels"),
        (cfg.z_dim == cfg.w_dim, f"z_dim {cfg.z_dim} != w_dim {cfg.w_dim}: they use one style_dim for both"),
        (cfg.img_channels == 3, f"{cfg.img_channels} image channels: their ToRGB is RGB only"),
        (cfg.mapping.lr_multiplier == 0.01, "mapping lr_multiplier must be their 0.01"),
        (cfg.mapping.layer_features in (None, cfg.w_dim), "mapping layer_features must equal style_dim"),
        (tuple(cfg.resample_filter) == (1, 3, 3, 1), "only the [1, 3, 3, 1] blur filter"),
        (cfg.conv_clamp is None, "conv_clamp: they do not clamp activations"),
        (cfg.use_noise, "use_noise=False: their layers always add noise"),
    ]
    return next((why for ok, why in checks if not ok), None)


def _discriminator_refusal(cfg: DiscriminatorConfig) -> str | None:
    checks = [
        (cfg.version == 2 and not cfg.growing, "only StyleGAN2 networks have a rosinality equivalent"),
        (cfg.architecture == "resnet", f"architecture {cfg.architecture!r}: their discriminator is 'resnet' only"),
        (cfg.c_dim == 0, "conditional networks: their discriminator takes no labels"),
        (cfg.img_channels == 3, f"{cfg.img_channels} image channels: their FromRGB is RGB only"),
        (tuple(cfg.resample_filter) == (1, 3, 3, 1), "only the [1, 3, 3, 1] blur filter"),
        (cfg.conv_clamp is None, "conv_clamp: they do not clamp activations"),
        (cfg.mbstd_group_size == 4 and cfg.mbstd_num_channels == 1, "minibatch stddev must be their group 4, 1 channel"),
    ]
    return next((why for ok, why in checks if not ok), None)


def _their_shape(key: str, t: torch.Tensor) -> torch.Tensor:
    """Our generator tensor -> the shape their module stores for `key`."""
    if key.endswith("conv.weight"):
        return t.unsqueeze(0)  # [1, O, I, k, k]: their weight carries the batch axis of modulation
    if key == "input.input":
        return t.unsqueeze(0)  # [1, C, 4, 4]
    if key.startswith("noises."):
        return t.reshape(1, 1, *t.shape)  # [1, 1, R, R]
    if key.endswith("noise.weight"):
        return t.reshape(1)
    if key.startswith("to_rgb") and key.endswith(".bias") and ".conv." not in key:
        return t.reshape(1, -1, 1, 1)  # [1, 3, 1, 1]
    return t


def rosinality_state(module: nn.Module, name: str = "network") -> dict[str, torch.Tensor]:
    """Our StyleGAN2 G (skip) or D (resnet) -> a state dict in their key layout; refusals name why."""
    kind = "generator" if isinstance(module, Generator) else "discriminator"
    cfg = module.cfg
    why = _generator_refusal(cfg) if kind == "generator" else _discriminator_refusal(cfg)
    if why:
        raise RosinalityFormatError(f"{name} cannot be written as a rosinality checkpoint: {why}")
    own = module.state_dict()
    key_map = _generator_key_map(cfg) if kind == "generator" else _discriminator_key_map(cfg)
    out: dict[str, torch.Tensor] = {}
    for theirs, ours in key_map.items():
        if theirs != "latent_avg":  # a top-level entry of the checkpoint, not of their state dict
            t = own[ours].detach().cpu().clone()
            out[theirs] = _their_shape(theirs, t) if kind == "generator" else t
    out.update({k: v.detach().cpu().clone() for k, v in _filters(module, kind).items()})
    return out


def save_rosinality(dest: str | Path, modules: dict[str, nn.Module], allow_custom_channels: bool = False) -> dict:
    """Write {'g_ema', 'g', 'd', 'latent_avg'} for their `Generator(size, style_dim, n_mlp, cm)`.

    Only tensors are written (no argparse.Namespace), so their code and torch.load(weights_only=True)
    both read it. Channel tables other than their stock one for some channel_multiplier are refused
    unless `allow_custom_channels` (their model.py must then be built with the same table).
    Returns {"args": their constructor arguments, "notes": [...]}.
    """
    if "G_ema" not in modules:
        raise RosinalityFormatError("a rosinality checkpoint needs a generator (G_ema)")
    for name, m in modules.items():  # what cannot be written at all, before how it would be written
        why = _generator_refusal(m.cfg) if isinstance(m, Generator) else _discriminator_refusal(m.cfg)
        if why:
            raise RosinalityFormatError(f"{name} cannot be written as a rosinality checkpoint: {why}")
    G = modules["G_ema"]
    cfg = G.cfg
    notes: list[str] = []
    table = {4 << i: cfg.channels(4 << i) for i in range(log2_resolution(cfg.img_resolution) - 1)}
    cm = stock_channel_multiplier(table)
    if cm is None:
        msg = (f"channel table {table} is not their stock table (512 up to 32 px, then 256 * channel_multiplier "
               f"halving per octave)")
        if not allow_custom_channels:
            raise RosinalityFormatError(f"G_ema cannot be written as a stock rosinality checkpoint: {msg}; pass "
                                        f"--custom-channels to write it for a model.py built with that table")
        notes.append(msg + ": build their Generator/Discriminator with this `channels` dict")
    for name, m in modules.items():
        if m.cfg.img_resolution != cfg.img_resolution or (name == "D" and (m.cfg.channel_base, m.cfg.channel_max)
                                                          != (cfg.channel_base, cfg.channel_max)):
            raise RosinalityFormatError(f"{name} does not match G_ema's resolution and channel table; their "
                                        f"checkpoint has one table for all networks")
    ckpt: dict[str, Any] = {"g_ema": rosinality_state(G, "G_ema"),
                            "latent_avg": G.mapping.w_avg.detach().cpu().clone()}
    for ours, theirs in (("G", "g"), ("D", "d")):
        if ours in modules:
            ckpt[theirs] = rosinality_state(modules[ours], ours)
    if cfg.num_fp16_res:
        notes.append("the network ran its highest resolutions in fp16 on CUDA; theirs runs fp32 (same weights)")
    write_atomic(dest, lambda tmp: torch.save(ckpt, tmp))
    args = {"size": cfg.img_resolution, "style_dim": cfg.w_dim, "n_mlp": cfg.mapping.num_layers,
            "channel_multiplier": cm}
    return {"args": args, "notes": notes, "networks": sorted(k for k in ckpt if k != "latent_avg")}
