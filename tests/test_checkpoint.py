"""Checkpoint format: round trips, strictness, clear errors, atomic writes."""
import json
import os

import pytest
import torch
from click.testing import CliRunner

import stylegan
from stylegan.cli import main
from stylegan.io.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from stylegan.models import DiscriminatorConfig, Generator, GeneratorConfig, MappingConfig, build_discriminator


def nets():
    g = Generator(GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, channel_base=64, channel_max=8,
                                  mapping=MappingConfig(num_layers=2), c_dim=3))
    d = build_discriminator(DiscriminatorConfig(img_resolution=8, channel_base=64, channel_max=8, c_dim=3,
                                                mbstd_group_size=2))
    return g, d


def test_round_trip_networks_and_state(tmp_path):
    G, D = nets()
    G.mapping.w_avg.normal_()
    opt = torch.optim.Adam(G.parameters(), lr=0.01)
    G(torch.randn(2, 8), torch.eye(3)[:2]).sum().backward()
    opt.step()
    state = {"G_opt": opt.state_dict(), "kimg": 1.25, "rng": torch.get_rng_state(), "tags": ["a", None]}
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, {"G": G, "D": D, "G_ema": G}, state=state, info={"kimg": 1.25})
    ck = read_checkpoint(path)
    assert set(ck.modules) == {"G", "D", "G_ema"} and ck.info == {"kimg": 1.25}
    G2 = stylegan.load(path)
    z, c = torch.randn(3, 8), torch.eye(3)
    torch.testing.assert_close(G2(z, c, psi=0.5), G.eval()(z, c, psi=0.5), rtol=0, atol=0)
    D2 = stylegan.load(path, which="D")
    img = G(z, c)[:2]
    torch.testing.assert_close(D2(img, c[:2]), D(img, c[:2]), rtol=0, atol=0)
    restored = ck.state
    opt2 = torch.optim.Adam(G2.parameters(), lr=0.5)
    opt2.load_state_dict(restored["G_opt"])
    assert opt2.param_groups[0]["lr"] == 0.01
    for a, b in zip(opt.state.values(), opt2.state.values()):
        torch.testing.assert_close(a["exp_avg"], b["exp_avg"])
    assert torch.equal(restored["rng"], state["rng"]) and restored["tags"] == ["a", None]


def test_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such"):
        stylegan.load(tmp_path / "missing.safetensors")
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(os.urandom(100))
    with pytest.raises(CheckpointError, match="not a stylegan checkpoint"):
        stylegan.load(foreign)
    G, D = nets()
    good = tmp_path / "good.safetensors"
    save_checkpoint(good, {"G_ema": G})
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        stylegan.load(truncated)
    from safetensors.torch import save_file
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not a stylegan checkpoint"):
        stylegan.load(plain)
    with pytest.raises(CheckpointError, match="no network 'D'"):
        stylegan.load(good, which="D")


def _rewrite(path, dest, edit_meta=None, edit_tensors=None):
    from safetensors import safe_open
    from safetensors.torch import save_file
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if edit_meta:
        edit_meta(meta)
    if edit_tensors:
        edit_tensors(tensors)
    from stylegan.io.checkpoint import DIGEST_KEY, content_digest
    meta[DIGEST_KEY] = content_digest(tensors, meta)  # as a writer of such a file would
    save_file(tensors, str(dest), metadata=meta)


@pytest.mark.parametrize("damage", ["flip_tensor_bit", "flip_metadata_digit", "truncate", "zero_tail"])
def test_damaged_checkpoint_is_an_error_naming_the_file(tmp_path, damage):
    """The digest written with every checkpoint catches what safetensors itself would load silently."""
    G, _ = nets()
    good = tmp_path / "good.safetensors"
    save_checkpoint(good, {"G_ema": G}, state={"pl_mean": torch.tensor(1.5)}, info={"kimg": 12.5})
    data = bytearray(good.read_bytes())
    header_end = 8 + int.from_bytes(data[:8], "little")
    if damage == "flip_tensor_bit":
        data[header_end + (len(data) - header_end) // 2] ^= 0x10
    elif damage == "flip_metadata_digit":
        i = data.index(b"12.5", 8, header_end)
        data[i] = ord("7")
    elif damage == "truncate":
        data = data[: len(data) - 100]
    else:
        data[-64:] = bytes(64)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="bad.safetensors is damaged"):
        read_checkpoint(bad)
    read_checkpoint(good)  # the original is fine


def test_incompatible_checkpoints_are_named(tmp_path):
    G, _ = nets()
    good = tmp_path / "good.safetensors"
    save_checkpoint(good, {"G_ema": G})

    def unknown_field(meta):
        mods = json.loads(meta["stylegan.modules"])
        mods["G_ema"]["config"]["warp_drive"] = True
        meta["stylegan.modules"] = json.dumps(mods)

    bad = tmp_path / "bad.safetensors"
    _rewrite(good, bad, edit_meta=unknown_field)
    with pytest.raises(CheckpointError, match="warp_drive"):
        stylegan.load(bad)

    def wrong_type(meta):
        mods = json.loads(meta["stylegan.modules"])
        mods["G_ema"]["config"]["architecture"] = "cubist"
        meta["stylegan.modules"] = json.dumps(mods)

    _rewrite(good, bad, edit_meta=wrong_type)
    with pytest.raises(CheckpointError, match="cubist"):
        stylegan.load(bad)

    def newer(meta):
        meta["stylegan.format_version"] = "99"

    _rewrite(good, bad, edit_meta=newer)
    with pytest.raises(CheckpointError, match="upgrade"):
        stylegan.load(bad)

    _rewrite(good, bad, edit_tensors=lambda t: t.pop("G_ema.synthesis.b8.conv0.weight"))
    with pytest.raises(CheckpointError, match="missing 1"):
        stylegan.load(bad)

    def reshape(t):
        t["G_ema.mapping.fc0.weight"] = torch.zeros(3, 3)

    _rewrite(good, bad, edit_tensors=reshape)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        stylegan.load(bad)

    def nan(t):
        t["G_ema.mapping.fc0.bias"] = torch.full_like(t["G_ema.mapping.fc0.bias"], float("nan"))

    _rewrite(good, bad, edit_tensors=nan)
    with pytest.raises(CheckpointError, match="NaN"):
        stylegan.load(bad)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    G, _ = nets()
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, {"G_ema": G})
    before = path.read_bytes()
    import safetensors.torch

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"G_ema": G})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.safetensors"]  # no temp file left


def test_generate_and_info_cli(tmp_path):
    G = Generator(GeneratorConfig(z_dim=8, w_dim=8, img_resolution=16, channel_base=128, channel_max=8,
                                  mapping=MappingConfig(num_layers=2)))
    path = tmp_path / "g.safetensors"
    save_checkpoint(path, {"G_ema": G})
    runner = CliRunner()
    out = tmp_path / "out"
    r = runner.invoke(main, ["generate", "--network", str(path), "--seeds", "0-3,9", "--trunc", "0.7",
                             "--noise-mode", "const", "--outdir", str(out), "--grid", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["grid.png", "seed0000.png", "seed0001.png", "seed0002.png", "seed0003.png", "seed0009.png"]
    from PIL import Image
    import numpy as np
    from stylegan.io.images import to_uint8
    from stylegan.synth.sample import generate
    expected = to_uint8(generate(G.eval(), [9], psi=0.7)).numpy()[0]
    assert np.array_equal(np.asarray(Image.open(out / "seed0009.png")), expected)
    assert Image.open(out / "grid.png").size == (48, 32)

    w = G.mapping(torch.randn(2, 8)).detach().numpy()
    np.savez(tmp_path / "projected_w.npz", w=w)
    r = runner.invoke(main, ["generate", "--network", str(path), "--projected-w", str(tmp_path / "projected_w.npz"),
                             "--outdir", str(tmp_path / "proj")])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "proj").iterdir())) == 2

    r = runner.invoke(main, ["generate", "--network", str(path), "--seeds", "0", "--class", "1",
                             "--outdir", str(out)])
    assert r.exit_code != 0 and "unconditional" in r.output
    r = runner.invoke(main, ["generate", "--network", str(tmp_path / "nope.safetensors"), "--seeds", "0",
                             "--outdir", str(out)])
    assert r.exit_code != 0 and "no such network file" in r.output and "Traceback" not in r.output
    r = runner.invoke(main, ["generate", "--network", str(path), "--seeds", "x-y", "--outdir", str(out)])
    assert r.exit_code != 0 and "cannot parse" in r.output

    r = runner.invoke(main, ["info", str(path)])
    assert r.exit_code == 0 and "16x16x3" in r.output and "G_ema" in r.output
    r = runner.invoke(main, ["info", str(path), "--json"])
    assert json.loads(r.output)["networks"]["G_ema"]["config"]["img_resolution"] == 16


def test_generate_64px_32_images_cpu(tmp_path):
    """Issue acceptance: 32 images at 64x64 on CPU through the CLI."""
    G = Generator(GeneratorConfig(z_dim=64, w_dim=64, img_resolution=64, channel_base=4096, channel_max=64,
                                  mapping=MappingConfig(num_layers=4)))
    path = tmp_path / "g64.safetensors"
    save_checkpoint(path, {"G_ema": G})
    r = CliRunner().invoke(main, ["generate", "--network", str(path), "--seeds", "0-31", "--outdir",
                                  str(tmp_path / "o"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "o").glob("seed*.png"))) == 32


def test_safetensors_header_length_with_pickle_marker_byte(tmp_path):
    """A safetensors header whose length's low byte is 0x80 must not be mistaken for a pickle."""
    from stylegan.io.load import sniff as _sniff
    path = tmp_path / "x.safetensors"
    path.write_bytes((0x1080).to_bytes(8, "little") + b'{"__metadata__":{}}')
    assert _sniff(path) == "safetensors"
    pkl = tmp_path / "x.pkl"
    import pickle
    pkl.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    assert _sniff(pkl) == "pickle"


def test_fixed_length_tuples_read_back_per_position():
    from stylegan.io.serialize import ConfigError, from_dict
    from stylegan.training.config import OptimizerConfig, ProgressiveConfig
    assert from_dict(ProgressiveConfig, to_dict_(ProgressiveConfig())) == ProgressiveConfig()
    with pytest.raises(ConfigError, match="expected 2 items"):
        from_dict(OptimizerConfig, {"betas": [0.0, 0.9, 0.1]})


def to_dict_(obj):
    from stylegan.io.serialize import to_dict
    return to_dict(obj)


def test_atomic_write_uses_normal_permissions(tmp_path):
    G, _ = nets()
    path = tmp_path / "ck.safetensors"
    old = os.umask(0o022)
    try:
        save_checkpoint(path, {"G_ema": G})
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644
