"""ONNX export: the exported graph, run by onnxruntime, reproduces our PyTorch generator to 1e-4."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from stylegan.cli import main
from stylegan.io.checkpoint import save_checkpoint
from stylegan.io.onnx_export import ExportOptions, export_onnx
from stylegan.models import Generator, GeneratorConfig, MappingConfig

TOL = 1e-4


def small_generator(version: int, res: int, c_dim: int = 0, perturb: bool = True) -> Generator:
    """perturb: random constant input, biases and noise strengths, so that no term hides and no
    feature map is nearly flat (instance norm would amplify float rounding); without it, the fresh init
    (v1: constant input of ones, zero noise) gives flat feature maps, where only the eps of the
    instance norm keeps the output finite."""
    v1 = dict(architecture="orig", growing=True, resample_filter=(1, 2, 1)) if version == 1 else {}
    G = Generator(GeneratorConfig(z_dim=32, w_dim=32, c_dim=c_dim, img_resolution=res, channel_base=16 * res,
                                  channel_max=16, mapping=MappingConfig(num_layers=2), version=version, **v1))
    with torch.no_grad():
        for name, t in G.named_parameters():
            if perturb and name.endswith(".const"):
                t.copy_(torch.randn_like(t))
            elif perturb and (name.endswith("bias") or "noise" in name):
                t.add_(torch.randn_like(t) * 0.3)
        G.mapping.w_avg.normal_()
    return G.eval().requires_grad_(False)


def run(path, feeds: dict) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]


@pytest.mark.parametrize("version, res, c_dim, perturb", [(2, 32, 5, True), (2, 64, 0, True), (1, 32, 0, False),
                                                          (1, 64, 3, True)])
def test_exported_generator_matches_pytorch(tmp_path, version, res, c_dim, perturb):
    G = small_generator(version, res, c_dim, perturb)
    path = tmp_path / "g.onnx"
    summary = export_onnx(G, path, ExportOptions(psi=0.7, noise="const", batch="dynamic"))
    assert summary["inputs"] == {"z": ["N", 32], **({"c": ["N", c_dim]} if c_dim else {})}
    onnx.checker.check_model(onnx.load(str(path)))
    z = torch.randn(3, 32)  # a batch other than the one traced (2): the batch axis is dynamic
    c = torch.nn.functional.one_hot(torch.tensor([0, 1, 2]), c_dim).float() if c_dim else None
    with torch.no_grad():
        want = G(z, c, psi=0.7, noise_mode="const").numpy()
    got = run(path, {"z": z, **({"c": c} if c_dim else {})})
    assert got.shape == (3, 3, res, res) and np.isfinite(got).all()
    assert np.abs(got - want).max() <= TOL
    with torch.no_grad():  # psi and noise are baked in: other settings differ
        assert np.abs(got - G(z, c, psi=1.0, noise_mode="const").numpy()).max() > 100 * TOL


def test_cli_export_w_input_no_noise_fixed_batch(tmp_path):
    G = small_generator(2, 32)
    src = tmp_path / "g.safetensors"
    save_checkpoint(src, {"G_ema": G})
    dest = tmp_path / "g.onnx"
    r = CliRunner().invoke(main, ["export", str(src), str(dest), "--psi", "0.5", "--noise", "none",
                                  "--batch", "4", "--w-input"])
    assert r.exit_code == 0, r.output
    assert "ws [4, 8, 32]" in r.output
    ws = torch.randn(4, G.num_ws, 32)
    with torch.no_grad():
        want = G.synthesis(G.truncate(ws, 0.5), noise_mode="none").numpy()
    assert np.abs(run(dest, {"ws": ws}) - want).max() <= TOL
    r = CliRunner().invoke(main, ["export", str(src), str(dest)])
    assert r.exit_code != 0 and "exists" in r.output
    r = CliRunner().invoke(main, ["export", str(src), str(tmp_path / "x.onnx"), "--batch", "zero"])
    assert r.exit_code != 0 and "positive integer" in r.output and not (tmp_path / "x.onnx").exists()


def test_cli_export_says_what_to_install(tmp_path, monkeypatch):
    import stylegan.io.onnx_export as onnx_export

    monkeypatch.setattr(onnx_export, "onnx_missing", lambda: "onnxruntime")
    r = CliRunner().invoke(main, ["export", str(tmp_path / "g.safetensors"), str(tmp_path / "g.onnx")])
    assert r.exit_code != 0 and "pip install 'stylegan[onnx]'" in r.output and "Traceback" not in r.output
