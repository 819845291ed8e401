"""Runtime precision (stylegan.nn.precision): fp32 unchanged, bf16 / fp16 close to it, clear messages."""
import threading

import pytest
import torch
from click.testing import CliRunner

from stylegan.models import Generator, GeneratorConfig, MappingConfig
from stylegan.nn import ModulatedConv2d, Precision, current_precision, precision_problem, precision_scope
from stylegan.nn import precision as precision_mod
from stylegan.synth.sample import generate

from test_perf import r1_and_pl_grads, tiny_nets

# Max |difference| to fp32 of the tiny networks' images (values up to ~3) with 16 bits in every block
# (num_low_res=8). bf16 keeps 8 significant bits, fp16 11; measured over seeds 0-9 (CPU, torch 2.13):
# images bf16 <= 0.085, fp16 <= 0.012; logits relative to max(|logit|, 1) bf16 <= 0.003, fp16 <= 0.0005.
# The bounds leave ~2.5x headroom.
TOL = {"bf16": 0.2, "fp16": 0.03}
ALL_LOW = dict(num_low_res=8)


def _block_dtypes(net, run):
    """{block name: dtype of its first conv's input} during run()."""
    seen, hooks = {}, []
    for name, m in net.named_modules():
        if name.count(".") == (1 if name.startswith("synthesis.") else 0) and hasattr(m, "conv1"):
            def record(mod, args, name=name):
                seen.setdefault(name, args[0].dtype)
            hooks.append(m.conv1.register_forward_pre_hook(record))
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_fp32_scope_is_bit_identical_values_and_gradients():
    G, D = tiny_nets()
    z, real = torch.randn(4, 16), torch.randn(4, 3, 16, 16)
    ref = r1_and_pl_grads(G, D, z, real, "auto")
    with precision_scope("fp32"):
        got = r1_and_pl_grads(G, D, z, real, "auto")
    for key in ("img", "logits"):
        assert torch.equal(ref[key], got[key])
    for key in ("r1_params", "pl_params"):
        for a, b in zip(ref[key], got[key]):
            assert (a is None and b is None) or torch.equal(a, b)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_low_precision_outputs_close_to_fp32_and_gradients_finite(dtype):
    G, D = tiny_nets()
    z, real = torch.randn(4, 16), torch.randn(4, 3, 16, 16)
    ref = r1_and_pl_grads(G, D, z, real, "auto")
    with precision_scope(Precision(dtype, **ALL_LOW)):
        got = r1_and_pl_grads(G, D, z, real, "auto")
    assert got["img"].dtype == torch.float32 and got["logits"].dtype == torch.float32  # fp32 at the edges
    assert (got["img"] - ref["img"]).abs().max() < TOL[dtype]
    assert (got["logits"] - ref["logits"]).abs().max() < TOL[dtype] * ref["logits"].abs().max().clamp(min=1)
    assert not torch.equal(got["img"], ref["img"])  # it really ran in 16 bits
    for key in ("r1_params", "pl_params"):
        grads = [g for g in got[key] if g is not None]
        assert grads and all(torch.isfinite(g).all() and g.dtype == torch.float32 for g in grads)
    # main-phase backward through G and D together (Gmain), parameter gradients finite
    G.requires_grad_(True)
    with precision_scope(dtype):
        torch.nn.functional.softplus(-D(G(z, None, noise_mode="random"))).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in G.parameters() if p.grad is not None)


def test_only_the_highest_resolutions_run_in_low_precision():
    G, D = tiny_nets(res=32)
    z = torch.randn(2, 16)
    with precision_scope(Precision("bf16", num_low_res=2)):
        g = _block_dtypes(G, lambda: G(z))
        d = _block_dtypes(D, lambda: D(torch.randn(2, 3, 32, 32)))
    assert g == {"synthesis.b4": torch.float32, "synthesis.b8": torch.float32,
                 "synthesis.b16": torch.bfloat16, "synthesis.b32": torch.bfloat16}
    assert d == {"b32": torch.bfloat16, "b16": torch.bfloat16, "b8": torch.float32}
    with precision_scope(Precision("bf16", num_low_res=8)):  # never below 8x8, like the official code
        assert _block_dtypes(G, lambda: G(z))["synthesis.b4"] == torch.float32
    assert set(_block_dtypes(G, lambda: G(z)).values()) == {torch.float32}  # outside the scope


def test_low_precision_layers_are_clamped_fp32_layers_are_not():
    G, _ = tiny_nets(res=16)
    G = Generator(G.cfg.replace(conv_clamp=None))
    outs = {}
    for name, m in G.synthesis.named_modules():
        if isinstance(m, ModulatedConv2d):
            m.register_forward_hook(lambda mod, a, out, name=name: outs.__setitem__(name, out))
    z = torch.randn(8, 16) * 3
    with precision_scope(Precision("bf16", num_low_res=1, conv_clamp=0.05)):
        G(z)
    assert outs["b16.conv1"].abs().max() <= 0.05  # 16x16 runs in bf16: clamped at the precision's bound
    assert outs["b8.conv1"].abs().max() > 0.05  # fp32 block: the network's own clamp (none)


def test_scope_is_per_thread_and_restored():
    seen = {}
    with precision_scope("bf16") as p:
        assert p == Precision("bf16") and current_precision() == p
        t = threading.Thread(target=lambda: seen.setdefault("other", current_precision()))
        t.start()
        t.join()
        with precision_scope(None):
            assert current_precision() is None
        assert current_precision() == p
    assert current_precision() is None and seen["other"] is None


def test_precision_validation():
    with pytest.raises(ValueError, match="precision must be one of"):
        Precision("fp8")
    with pytest.raises(ValueError, match="num_low_res"):
        Precision("bf16", num_low_res=-1)
    with pytest.raises(ValueError, match="conv_clamp"):
        Precision("fp16", conv_clamp=0)
    with pytest.raises(TypeError, match="precision must be"):
        with precision_scope(torch.bfloat16):
            pass


def test_cpu_without_bf16_instructions_gets_a_clear_message():
    msg = precision_problem("bf16", "cpu", flags=frozenset({"avx2", "fma"}))
    assert "no bf16 instructions" in msg and "avx512_bf16" in msg and "fp32" in msg
    assert precision_problem("bf16", "cpu", flags=frozenset({"avx2", "amx_bf16"})) is None
    assert "no fp16 instructions" in precision_problem("fp16", "cpu", flags=frozenset({"amx_bf16"}))
    assert precision_problem("fp32", "cpu", flags=frozenset()) is None
    assert precision_problem(None, "cpu") is None


def test_generate_precision_argument(monkeypatch):
    monkeypatch.setattr(precision_mod, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    G, _ = tiny_nets()
    G.eval()
    fp32 = generate(G, [0, 1, 2], precision="fp32")
    assert torch.equal(fp32, generate(G, [0, 1, 2]))
    bf16 = generate(G, [0, 1, 2], precision=Precision("bf16", **ALL_LOW))
    assert 0 < (bf16 - fp32).abs().max() < TOL["bf16"]
    with precision_scope(Precision("bf16", **ALL_LOW)):  # None inherits the scope
        assert torch.equal(generate(G, [0, 1, 2]), bf16)
    monkeypatch.setattr(precision_mod, "cpu_flags", lambda: frozenset({"avx2"}))
    with pytest.warns(RuntimeWarning, match="no bf16 instructions"):
        generate(G, [0], precision="bf16")
    v1 = Generator(GeneratorConfig(version=1, architecture="orig", z_dim=16, w_dim=16, img_resolution=8, channel_base=64, channel_max=16,
                                   mapping=MappingConfig(num_layers=1)))
    with pytest.raises(ValueError, match="StyleGAN2 networks only"):
        generate(v1, [0], precision="bf16")


def test_generate_cli_precision(tmp_path, monkeypatch):
    from stylegan.cli import main
    from stylegan.io.checkpoint import save_checkpoint

    monkeypatch.setattr(precision_mod, "cpu_flags", lambda: frozenset({"avx2"}))
    G, _ = tiny_nets()
    path = tmp_path / "g.safetensors"
    save_checkpoint(path, {"G_ema": G})
    r = CliRunner().invoke(main, ["generate", "--network", str(path), "--seeds", "0-1", "--outdir",
                                  str(tmp_path / "out"), "--device", "cpu", "--precision", "bf16"])
    assert r.exit_code == 0, r.output
    assert "warning: this CPU has no bf16 instructions" in r.output
    assert len(list((tmp_path / "out").iterdir())) == 2
    r = CliRunner().invoke(main, ["generate", "--network", str(path), "--seeds", "0", "--outdir",
                                  str(tmp_path / "out"), "--precision", "fp8"])
    assert r.exit_code != 0 and "fp8" in r.output
