"""The papers' presets: they build, run at tiny scale, round-trip, and differ exactly as documented."""
from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import stylegan
from stylegan.io.checkpoint import read_checkpoint
from stylegan.io.serialize import from_dict, to_dict
from stylegan.models import DiscriminatorConfig, Generator, GeneratorConfig, build_discriminator
from stylegan.models import stylegan1 as s1
from stylegan.training.config import TrainingConfig
from stylegan.training.paper_presets import PAPER_PRESETS, sg1_config, with_architectures
from stylegan.training.presets import PRESETS, DataShape, resolve_preset

DOCS = Path(__file__).resolve().parents[1] / "docs" / "presets.md"
SG1 = [f"sg1-{c}" for c in "ABCDEF"] + [f"sg1-F-mix{p}" for p in (0, 50, 90, 100)] + \
    [f"sg1-F-map{d}" for d in (0, 1, 2, 8)]
SG2 = [f"sg2-{c}" for c in "ABCDEF"] + [f"sg2-E-{g}-{d}" for g in ("orig", "skip", "resnet")
                                      for d in ("orig", "skip", "resnet")]
FFHQ = DataShape(resolution=1024)


pytestmark = pytest.mark.usefixtures("one_thread")


def diff(a, b, prefix: str = "") -> set[str]:
    """Dotted paths of the top-most fields that differ between two config dicts."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        out: set[str] = set()
        for k in a:
            out |= diff(a[k], b[k], f"{prefix}{k}.")
        return out
    return set() if a == b else {prefix.rstrip(".")}


def cfgdiff(x: str, y: str, shape: DataShape = FFHQ) -> set[str]:
    return diff(to_dict(resolve_preset(x, shape)), to_dict(resolve_preset(y, shape))) - {"preset"}


def tiny(cfg: TrainingConfig, res: int = 16) -> TrainingConfig:
    """Shrink a preset for a CPU test: small latents, 8 channels, `res` pixels."""
    G = cfg.G
    embed = 8 if G.c_dim else None
    w_dim = 16 + (embed if G.c_dim and G.mapping.num_layers == 0 else 0)
    G = G.replace(z_dim=16, w_dim=w_dim, img_resolution=res, channel_base=128, channel_max=8,
                  mapping=replace(G.mapping, embed_features=embed, layer_features=16))
    D = cfg.D.replace(img_resolution=res, channel_base=128, channel_max=8)
    return cfg.replace(G=G, D=D)


def grows(cfg: TrainingConfig) -> bool:
    return cfg.G.version == 1 or cfg.G.growing


def build(cfg: TrainingConfig):
    G = Generator(cfg.G)
    D = build_discriminator(cfg.D)
    # Until build_synthesis / build_discriminator route growing=True version-2 configs to stylegan1
    # (see test_growing_v2_configs_route_to_progressive_networks), build those networks directly.
    if grows(cfg) and not isinstance(G.synthesis, s1.SynthesisNetwork):
        G.synthesis = s1.SynthesisNetwork(cfg.G)
    if (cfg.D.version == 1 or cfg.D.growing) and not isinstance(D, s1.Discriminator):
        D = s1.Discriminator(cfg.D)
    return G, D


# ----------------------------------------------------------------------------------- registry

def test_all_presets_registered():
    assert sorted(PAPER_PRESETS) == sorted(SG1 + SG2)
    for name in SG1 + SG2:
        assert PRESETS[name] is PAPER_PRESETS[name]
        assert resolve_preset(name, FFHQ).preset == name
    assert {"stylegan2", "paper256", "cifar", "auto"} <= set(PRESETS)  # the official ones are kept


@pytest.mark.parametrize("first", ["stylegan.training.paper_presets", "stylegan.training.presets",
                                   "stylegan.training.progressive"])
def test_import_order(first):
    code = (f"import {first}\nfrom stylegan.training.presets import PRESETS\n"
            f"assert 'sg1-F' in PRESETS and 'sg2-E-orig-orig' in PRESETS and 'stylegan2' in PRESETS")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", SG1 + SG2)
def test_json_round_trip(name):
    for shape in (FFHQ, DataShape(resolution=256, c_dim=5, gpus=8), DataShape(resolution=4, channels=1)):
        cfg = resolve_preset(name, shape)
        text = json.dumps(to_dict(cfg))
        # the network configs (what checkpoints store) always round-trip
        assert from_dict(GeneratorConfig, json.loads(text)["G"]) == cfg.G
        assert from_dict(DiscriminatorConfig, json.loads(text)["D"]) == cfg.D
        assert from_dict(TrainingConfig, json.loads(text)) == cfg


# ----------------------------------------------------------------------------------- builds

@pytest.mark.parametrize("name", SG1 + SG2)
def test_every_preset_builds_and_runs(name):
    torch.manual_seed(0)
    cond = name in ("sg1-A", "sg1-F", "sg2-B", "sg2-E")
    cfg = tiny(resolve_preset(name, DataShape(resolution=1024, c_dim=3 if cond else 0)))
    G, D = build(cfg)
    z = torch.randn(4, 16)
    c = torch.eye(3)[[0, 1, 2, 0]] if cond else None
    levels = [0.0, 0.5, 1.0, 1.75, 2.0] if grows(cfg) else [None]
    for lod in levels:
        kw = {} if lod is None else {"lod": lod}
        img = G(z, c, noise_mode="random", **kw)
        assert img.shape == (4, 3, 16, 16) and torch.isfinite(img).all()
        logits = D(img, c, **kw)
        assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    if cfg.progressive is not None:
        assert s1.set_lod(G, 1.5) == 1 and s1.set_lod(D, 1.5) == 1


def test_growing_v2_configs_route_to_progressive_networks():
    cfg = tiny(resolve_preset("sg2-B", FFHQ))
    assert isinstance(Generator(cfg.G).synthesis, s1.SynthesisNetwork)
    assert isinstance(build_discriminator(cfg.D), s1.Discriminator)


def test_channels_and_progressive_fields():
    f = resolve_preset("sg1-F", FFHQ)
    assert [f.G.channels(r) for r in (4, 32, 64, 1024)] == [512, 512, 256, 16]
    assert f.progressive.start_resolution == 8 and resolve_preset("sg1-A", FFHQ).progressive.start_resolution == 4
    assert dict(f.progressive.batch_by_resolution)[8] == 128 and f.batch == 4
    eight = resolve_preset("sg1-F", DataShape(resolution=1024, gpus=8))
    assert dict(eight.progressive.batch_by_resolution)[4] == 512 and eight.batch == 32
    three = resolve_preset("sg1-F", DataShape(resolution=1024, gpus=3))  # the 2-GPU table
    assert dict(three.progressive.batch_by_resolution)[8] == 256
    assert dict(resolve_preset("sg2-A", FFHQ).progressive.batch_by_resolution) == \
        {4: 32, 8: 256, 16: 128, 32: 64, 64: 32, 128: 32, 256: 32, 512: 32, 1024: 32}
    assert resolve_preset("sg2-E", FFHQ).progressive is None
    assert resolve_preset("sg2-F", FFHQ).G.channels(64) == 512 and resolve_preset("sg2-E", FFHQ).G.channels(64) == 256
    cond = resolve_preset("sg1-A", DataShape(resolution=64, c_dim=4))  # 0-layer mapping: w = [z, embed(c)]
    assert cond.G.w_dim == 1024 and cond.G.mapping.embed_features == 512
    assert resolve_preset("sg1-F", DataShape(resolution=4)).progressive.start_resolution == 4


# ----------------------------------------------------------------------------------- differences

def test_sg1_table1_steps_differ_exactly_as_documented():
    assert cfgdiff("sg1-A", "sg1-B") == {"G.resample_filter", "D.resample_filter", "loss.kind", "loss.r1_gamma",
                                         "progressive.start_resolution", "progressive.lr_by_resolution",
                                         "total_kimg"}
    assert cfgdiff("sg1-B", "sg1-C") == {"G.mapping.num_layers", "G.v1.use_styles", "G.v1.normalization"}
    assert cfgdiff("sg1-C", "sg1-D") == {"G.v1.const_input"}
    assert cfgdiff("sg1-D", "sg1-E") == {"G.use_noise"}
    assert cfgdiff("sg1-E", "sg1-F") == {"loss.style_mixing_prob"}


def test_sg1_variants_differ_exactly_as_documented():
    for pct in (0, 50, 90, 100):
        assert cfgdiff("sg1-F", f"sg1-F-mix{pct}") == (set() if pct == 90 else {"loss.style_mixing_prob"})
        assert resolve_preset(f"sg1-F-mix{pct}", FFHQ).loss.style_mixing_prob == pct / 100
    for depth in (0, 1, 2, 8):
        assert cfgdiff("sg1-F", f"sg1-F-map{depth}") == (set() if depth == 8 else {"G.mapping.num_layers"})
        assert resolve_preset(f"sg1-F-map{depth}", FFHQ).G.mapping.num_layers == depth
    assert cfgdiff("sg1-E", "sg1-F-mix0") == set()


def test_sg2_table1_steps_differ_exactly_as_documented():
    assert cfgdiff("sg1-F", "sg2-A") == {"progressive.batch_by_resolution", "batch"}
    assert cfgdiff("sg2-A", "sg2-B") == {"G.version", "G.v1", "G.resample_filter", "D.version", "D.resample_filter"}
    assert cfgdiff("sg2-B", "sg2-C") == {"loss.r1_interval"}
    assert cfgdiff("sg2-C", "sg2-D") == {"loss.pl_weight"}
    assert cfgdiff("sg2-D", "sg2-E") == {"G.growing", "D.growing", "G.architecture", "D.architecture",
                                         "progressive", "G_opt.lr", "D_opt.lr", "loss.r1_gamma"}
    assert cfgdiff("sg2-E", "sg2-F") == {"G.channel_base", "D.channel_base", "loss.r1_gamma"}
    b, e, f = (resolve_preset(n, FFHQ) for n in ("sg2-B", "sg2-E", "sg2-F"))
    assert (b.G.version, b.G.growing, b.G.architecture, b.G.resample_filter) == (2, True, "orig", (1, 3, 3, 1))
    assert (e.G.architecture, e.D.architecture, e.loss.r1_gamma, e.batch, e.G_opt.lr) == \
        ("skip", "resnet", 100, 32, 0.002)
    assert (f.G.channel_base, f.loss.r1_gamma, f.loss.r1_interval, f.loss.pl_weight) == (32768, 10, 16, 2)


def test_table2_grid_differs_only_in_architectures():
    for g in ("orig", "skip", "resnet"):
        for d in ("orig", "skip", "resnet"):
            changed = {x for x, same in (("G.architecture", g == "skip"), ("D.architecture", d == "resnet"))
                       if not same}
            assert cfgdiff("sg2-E", f"sg2-E-{g}-{d}") == changed
            cfg = resolve_preset(f"sg2-E-{g}-{d}", FFHQ)
            assert (cfg.G.architecture, cfg.D.architecture, cfg.preset) == (g, d, f"sg2-E-{g}-{d}")


def test_with_architectures():
    e = resolve_preset("sg2-E", FFHQ)
    assert with_architectures(e, "resnet", None).G.architecture == "resnet"
    assert with_architectures(e, None, "orig").D.architecture == "orig"
    assert with_architectures(e, None, None) == e
    assert with_architectures(resolve_preset("stylegan2", FFHQ), "orig", "skip").D.architecture == "skip"
    with pytest.raises(ValueError, match="one of"):
        with_architectures(e, "fancy", None)
    for name in ("sg1-F", "sg2-B"):
        cfg = resolve_preset(name, FFHQ)
        assert with_architectures(cfg, "orig", "orig") == cfg
        with pytest.raises(ValueError, match="orig"):
            with_architectures(cfg, "skip", "resnet")
    with pytest.raises(ValueError):
        sg1_config(FFHQ, "G")


def test_docs_table_lists_every_preset():
    text = DOCS.read_text()
    rows = re.findall(r"^\|\s*`([^`]+)`", text, flags=re.M)
    for name in SG1 + SG2:
        assert name in rows, f"{name} missing from docs/presets.md"


# ----------------------------------------------------------------------------------- checkpoints

@pytest.mark.parametrize("name", ["sg1-F", "sg1-A"])
def test_checkpoint_round_trip_keeps_lod(tmp_path, name):
    torch.manual_seed(1)
    cfg = tiny(resolve_preset(name, FFHQ))
    G, D = build(cfg)
    G_ema = copy.deepcopy(G)
    for net in (G, G_ema, D):
        s1.set_lod(net, 1.5)
    path = tmp_path / "net.safetensors"
    stylegan.save_checkpoint(path, {"G": G, "G_ema": G_ema, "D": D}, info={"preset": name})
    loaded = stylegan.load(path)
    assert s1.get_lod(loaded) == 1.5 and loaded.cfg == cfg.G
    z = torch.randn(4, 16)
    assert torch.equal(loaded(z), G_ema(z))
    D2 = read_checkpoint(path).build("D")
    assert s1.get_lod(D2) == 1.5 and D2.cfg == cfg.D
    img = G_ema(z)
    assert torch.equal(D2(img), D(img))
