"""The papers' configurations as presets: StyleGAN v1 Table 1/2/4 and StyleGAN2 Table 1/2.

Every preset is a pure function DataShape -> TrainingConfig (see `training.presets`); they are
merged into `PRESETS` by `training.presets`. docs/presets.md tables what each one changes.

Values come from the official code (StyleGAN v1 `train.py` and `training_loop.py`, StyleGAN2
`run_training.py`, Progressive GAN `config.py`):

- sg1-A: Progressive GAN (G_paper-like: z -> dense 4x4, pixel norm, nearest up / box down),
  WGAN-GP, growing from 4x4, PGGAN "preset-v2" batch and lr tables, 12000 kimg.
- sg1-B: + bilinear resampling (2x nearest + [1, 2, 1] blur), start at 8x8, tuned lr table,
  non-saturating logistic loss + R1 (gamma 10) every D step, 25000 kimg.
- sg1-C: + mapping network (8 layers) and AdaIN styles (instance norm). sg1-D: + constant input.
  sg1-E: + noise inputs. sg1-F: + style mixing 0.9 (the StyleGAN release).
- sg2-A: sg1-F networks with the StyleGAN2 code's schedule for configs A-D (total batch 256 at 8x8,
  128 at 16, 64 at 32, 32 from 64 on). sg2-B: weight demodulation (version 2 progressive networks).
  sg2-C: lazy R1 (every 16 minibatches). sg2-D: path length regularization. sg2-E: no growing,
  G skip / D resnet, batch 32, lr 0.002, gamma 100. sg2-F: channel_base 32768, gamma 10.

Channels: TF's fmap_base 8192 is channel_base 16384 here: the TF code gives a resolution-r block
nf(log2(r) - 1) = fmap_base / 2^(log2(r) - 1) = 2 fmap_base / r channels, ours channel_base / r.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional

from ..models.config import Architecture, DiscriminatorConfig, GeneratorConfig, MappingConfig, StyleGAN1Options
from .config import DataShape, LossConfig, OptimizerConfig, ProgressiveConfig, TrainingConfig

ARCHITECTURES = ("orig", "skip", "resnet")
_RESOLUTIONS = tuple(2 ** i for i in range(2, 11))  # 4 .. 1024

# StyleGAN v1 train.py / PGGAN preset-v2 minibatch by GPU count: (base, {resolution: batch}).
_V1_BATCH = {
    1: (4, {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4}),
    2: (8, {4: 256, 8: 256, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8}),
    4: (16, {4: 512, 8: 256, 16: 128, 32: 64, 64: 32, 128: 16}),
    8: (32, {4: 512, 8: 256, 16: 128, 32: 64, 64: 32}),
}
# StyleGAN v1 (configs B-F) learning rates; base 0.001.
_V1_LR = ((128, 0.0015), (256, 0.002), (512, 0.003), (1024, 0.003))
# Progressive GAN preset-v2 learning rates by GPU count; base 0.001.
_PGGAN_LR = {
    1: ((1024, 0.0015),),
    2: ((512, 0.0015), (1024, 0.002)),
    4: ((256, 0.0015), (512, 0.002), (1024, 0.003)),
    8: _V1_LR,
}
# StyleGAN2 run_training.py, configs A-D: total minibatch (base 32), independent of GPU count.
_SG2_BATCH = (32, {8: 256, 16: 128, 32: 64, 64: 32})


def _table(base: int, entries: dict[int, int]) -> tuple[tuple[int, int], ...]:
    """A complete resolution -> batch table (4..1024), base for unlisted resolutions."""
    return tuple((r, int(entries.get(r, base))) for r in _RESOLUTIONS)


def _gpu_key(gpus: int) -> int:
    """The official tables exist for 1, 2, 4, 8 GPUs; use the largest one not above `gpus`."""
    return max(k for k in (1, 2, 4, 8) if k <= max(gpus, 1))


def _progressive(shape: DataShape, *, start: int, batch: tuple[tuple[int, int], ...],
                 lr: tuple[tuple[int, float], ...]) -> ProgressiveConfig:
    return ProgressiveConfig(start_resolution=min(start, shape.resolution), lod_training_kimg=600.0,
                             lod_transition_kimg=600.0, batch_by_resolution=batch, lr_by_resolution=lr,
                             base_lr=0.001, reset_optimizer=True)


# ----------------------------------------------------------------------------------- StyleGAN v1

_V1_CONFIGS = {
    #      traditional input, styles, norm,      mapping, noise, mixing
    "A": dict(const=False, styles=False, norm="pixel", map_layers=0, noise=False, mixing=0.0),
    "B": dict(const=False, styles=False, norm="pixel", map_layers=0, noise=False, mixing=0.0),
    "C": dict(const=False, styles=True, norm="instance", map_layers=8, noise=False, mixing=0.0),
    "D": dict(const=True, styles=True, norm="instance", map_layers=8, noise=False, mixing=0.0),
    "E": dict(const=True, styles=True, norm="instance", map_layers=8, noise=True, mixing=0.0),
    "F": dict(const=True, styles=True, norm="instance", map_layers=8, noise=True, mixing=0.9),
}


def sg1_config(shape: DataShape, config: str = "F", *, mixing: Optional[float] = None,
               map_layers: Optional[int] = None, name: str = "") -> TrainingConfig:
    """StyleGAN v1 Table 1 config A..F (optionally with another mixing probability / mapping depth)."""
    if config not in _V1_CONFIGS:
        raise ValueError(f"StyleGAN v1 config must be one of {sorted(_V1_CONFIGS)}, got {config!r}")
    k = _V1_CONFIGS[config]
    mixing = k["mixing"] if mixing is None else mixing
    map_layers = k["map_layers"] if map_layers is None else map_layers
    pggan = config == "A"
    z_dim, embed = 512, 512
    # A 0-layer mapping passes z (and the label embedding) through: w is their concatenation.
    w_dim = z_dim + (embed if shape.c_dim > 0 and map_layers == 0 else 0)
    blur = (1,) if pggan else (1, 2, 1)
    G = GeneratorConfig(
        z_dim=z_dim, c_dim=shape.c_dim, w_dim=w_dim, img_resolution=shape.resolution,
        img_channels=shape.channels,
        mapping=MappingConfig(num_layers=map_layers, embed_features=embed if shape.c_dim > 0 else None),
        version=1, architecture="orig", channel_base=16384, channel_max=512, num_fp16_res=0,
        conv_clamp=None, resample_filter=blur, use_noise=k["noise"], growing=True,
        v1=StyleGAN1Options(const_input=k["const"], use_styles=k["styles"], normalization=k["norm"]))
    D = DiscriminatorConfig(
        c_dim=shape.c_dim, img_resolution=shape.resolution, img_channels=shape.channels, version=1,
        architecture="orig", channel_base=16384, channel_max=512, num_fp16_res=0, conv_clamp=None,
        resample_filter=blur, mbstd_group_size=4, mbstd_num_channels=1, growing=True)
    base, entries = _V1_BATCH[_gpu_key(shape.gpus)]
    batch = _table(base, entries)
    if pggan:
        loss = LossConfig(kind="wgan-gp", r1_gamma=0.0, r1_interval=0, pl_weight=0.0, style_mixing_prob=mixing)
        prog = _progressive(shape, start=4, batch=batch, lr=_PGGAN_LR[_gpu_key(shape.gpus)])
        total = 12000.0
    else:
        loss = LossConfig(kind="logistic", r1_gamma=10.0, r1_interval=0, pl_weight=0.0,
                          style_mixing_prob=mixing)
        prog = _progressive(shape, start=8, batch=batch, lr=_V1_LR)
        total = 25000.0
    opt = OptimizerConfig(lr=prog.base_lr)
    return TrainingConfig(G=G, D=D, G_opt=opt, D_opt=opt, loss=loss, progressive=prog,
                          batch=dict(batch).get(shape.resolution, base), ema_kimg=10.0, total_kimg=total,
                          cond=shape.c_dim > 0, preset=name or f"sg1-{config}")


# ----------------------------------------------------------------------------------- StyleGAN2

def sg2_config(shape: DataShape, config: str = "F", *, name: str = "") -> TrainingConfig:
    """StyleGAN2 Table 1 config A..F (StyleGAN2 `run_training.py --config=config-X`)."""
    if config not in "ABCDEF" or len(config) != 1:
        raise ValueError(f"StyleGAN2 config must be one of A..F, got {config!r}")
    name = name or f"sg2-{config}"
    if config in "ABCD":
        cfg = sg1_config(shape, "F", name=name)
        prog = replace(cfg.progressive, batch_by_resolution=_table(*_SG2_BATCH))
        cfg = cfg.replace(progressive=prog, batch=dict(prog.batch_by_resolution).get(shape.resolution, 32))
        if config == "A":
            return cfg
        # B: weight demodulation -> the revised progressive networks (TF G_synthesis_stylegan_revised,
        # D_stylegan) with the [1, 3, 3, 1] FIR filter.
        fir = (1, 3, 3, 1)
        cfg = cfg.replace(G=cfg.G.replace(version=2, v1=None, resample_filter=fir),
                          D=cfg.D.replace(version=2, resample_filter=fir))
        if config in "CD":  # C: lazy regularization (R1 every 16 D minibatches)
            cfg = cfg.replace(loss=replace(cfg.loss, r1_interval=16))
        if config == "D":  # D: path length regularization (every 4 G minibatches)
            cfg = cfg.replace(loss=replace(cfg.loss, pl_weight=2.0, pl_interval=4))
        return cfg
    # E: no growing, G skip + D resnet, StyleGAN2 defaults (batch 32, lr 0.002), gamma 100.
    d = sg2_config(shape, "D", name=name)
    G = d.G.replace(growing=False, architecture="skip")
    D = d.D.replace(growing=False, architecture="resnet")
    loss = replace(d.loss, r1_gamma=100.0)
    if config == "F":  # F: large networks (TF fmap_base 16 << 10), default gamma 10
        G, D = G.replace(channel_base=32768), D.replace(channel_base=32768)
        loss = replace(loss, r1_gamma=10.0)
    opt = OptimizerConfig(lr=0.002)
    return d.replace(G=G, D=D, loss=loss, G_opt=opt, D_opt=opt, progressive=None, batch=32)


def with_architectures(cfg: TrainingConfig, g_arch: Optional[str] = None,
                       d_arch: Optional[str] = None) -> TrainingConfig:
    """`cfg` with the G and D architectures replaced (StyleGAN2 Table 2; CLI --g-arch / --d-arch).

    None keeps the current one. Progressive-growing networks only have the 'orig' layout.
    """
    for what, arch in (("G", g_arch), ("D", d_arch)):
        if arch is not None and arch not in ARCHITECTURES:
            raise ValueError(f"{what} architecture must be one of {ARCHITECTURES}, got {arch!r}")
    g_arch = cfg.G.architecture if g_arch is None else g_arch
    d_arch = cfg.D.architecture if d_arch is None else d_arch
    growing = cfg.progressive is not None or cfg.G.version == 1 or cfg.G.growing or cfg.D.version == 1 \
        or cfg.D.growing
    if growing and (g_arch, d_arch) != ("orig", "orig"):
        raise ValueError(f"preset {cfg.preset or '?'} grows progressively, and progressive networks have "
                         f"the 'orig' layout only; --g-arch/--d-arch need a non-growing preset "
                         f"(e.g. sg2-E, stylegan2)")
    return cfg.replace(G=cfg.G.replace(architecture=g_arch), D=cfg.D.replace(architecture=d_arch))


# ----------------------------------------------------------------------------------- registry

def _sg1(config: str, **kw) -> Callable[[DataShape], TrainingConfig]:
    return lambda shape: sg1_config(shape, config, **kw)


def _sg2(config: str) -> Callable[[DataShape], TrainingConfig]:
    return lambda shape: sg2_config(shape, config)


def _grid(g: Architecture, d: Architecture) -> Callable[[DataShape], TrainingConfig]:
    name = f"sg2-E-{g}-{d}"
    return lambda shape: with_architectures(sg2_config(shape, "E", name=name), g, d)


PAPER_PRESETS: dict[str, Callable[[DataShape], TrainingConfig]] = {}
for _c in "ABCDEF":
    PAPER_PRESETS[f"sg1-{_c}"] = _sg1(_c)
for _pct in (0, 50, 90, 100):
    PAPER_PRESETS[f"sg1-F-mix{_pct}"] = _sg1("F", mixing=_pct / 100, name=f"sg1-F-mix{_pct}")
for _depth in (0, 1, 2, 8):
    PAPER_PRESETS[f"sg1-F-map{_depth}"] = _sg1("F", map_layers=_depth, name=f"sg1-F-map{_depth}")
for _c in "ABCDEF":
    PAPER_PRESETS[f"sg2-{_c}"] = _sg2(_c)
for _g in ARCHITECTURES:
    for _d in ARCHITECTURES:
        PAPER_PRESETS[f"sg2-E-{_g}-{_d}"] = _grid(_g, _d)
del _c, _pct, _depth, _g, _d
