"""Make the StyleGAN3 parity fixture (src/stylegan/selftest/data/official_sg3{t,r}_tiny.*) by running
NVIDIA's own networks (`training/networks_stylegan3.py` of a local NVlabs/stylegan3 checkout, never
copied into this repository) on the CPU with its reference ops, float32.

    git --git-dir=<mirror of NVlabs/stylegan3> archive HEAD | tar -x -C /tmp/sg3
    .venv/bin/python scripts/make-sg3-fixture.py /tmp/sg3 src/stylegan/selftest/data

For each config (T: 32x32, conditional; R: 16x16, unconditional) the official Generator is built
small, its weights randomised so that no term hides (biases, the input affine, magnitude averages,
w_avg), and the calls listed in the JSON are run; the .npz holds the official state_dict (`G.<key>`),
the inputs (`in.*`) and the outputs (`out.*`). See the data README for the acceptance rule.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_checkout import use_checkout  # noqa: E402


def import_official(root: Path):
    """NVIDIA's networks_stylegan3 from a checkout (`official_checkout.use_checkout`)."""
    use_checkout(root, "training/networks_stylegan3.py")
    from training import networks_stylegan3  # noqa: E402
    return networks_stylegan3


CONFIGS = {
    "t": dict(seed=3, kwargs=dict(z_dim=16, c_dim=3, w_dim=16, img_resolution=32, img_channels=3,
                                  mapping_kwargs=dict(num_layers=2), channel_base=256, channel_max=12,
                                  magnitude_ema_beta=0.5 ** (32 / 20000))),
    "r": dict(seed=4, kwargs=dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                                  mapping_kwargs=dict(num_layers=2), channel_base=512, channel_max=24,
                                  magnitude_ema_beta=0.5 ** (32 / 20000), conv_kernel=1, use_radial_filters=True)),
}
PSI, CUTOFF = 0.7, 8
LAYER_ATTRS = ("in_channels", "out_channels", "in_size", "out_size", "in_sampling_rate", "out_sampling_rate",
               "tmp_sampling_rate", "in_cutoff", "out_cutoff", "in_half_width", "out_half_width", "conv_kernel",
               "up_factor", "down_factor", "up_taps", "down_taps", "down_radial", "is_torgb",
               "is_critically_sampled", "use_fp16", "padding")
CROP = 2  # intermediate feature maps: sample 0, the first CROP channels


def projection(shape) -> torch.Tensor:
    """The fixed cotangent of the gradient call: sin(0.37 i + 1.3 c + 3 n) over pixels i of channel c, sample n."""
    n, c, h, w = shape
    i = torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w)
    phase = 1.3 * torch.arange(c, dtype=torch.float64).reshape(1, c, 1, 1) + 3.0 * torch.arange(n, dtype=torch.float64).reshape(n, 1, 1, 1)
    return torch.sin(0.37 * i + phase).to(torch.float32)


def transform_matrix(tx: float, ty: float, degrees: float) -> np.ndarray:
    """The user transform buffer for an image translated by (tx, ty) and rotated (the inverse map)."""
    a = np.deg2rad(degrees)
    m = np.array([[np.cos(a), np.sin(a), tx], [-np.sin(a), np.cos(a), ty], [0, 0, 1]])
    return np.linalg.inv(m)


@torch.no_grad()
def randomize(G, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for name, p in G.named_parameters():
        if name.endswith("bias"):
            p.add_(torch.randn(p.shape, generator=g) * 0.2)
        if name == "synthesis.input.affine.weight":
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    # Magnitude averages as training leaves them: the measured input magnitudes, times 0.7..1.3.
    layers = [getattr(G.synthesis, n) for n in G.synthesis.layer_names]
    betas = [layer.magnitude_ema_beta for layer in layers]
    for layer in layers:
        layer.magnitude_ema_beta = 0.0
    z = torch.randn([8, G.z_dim], generator=g)
    c = torch.eye(G.c_dim)[torch.arange(8) % G.c_dim] if G.c_dim else None
    G(z, c, update_emas=True)
    for layer, beta in zip(layers, betas):
        layer.magnitude_ema_beta = beta
        layer.magnitude_ema.mul_(0.7 + 0.6 * torch.rand([], generator=g))
    G.mapping.w_avg.copy_(torch.randn(G.mapping.w_avg.shape, generator=g) * 0.5)


def make(n3, name: str, spec: dict, outdir: Path) -> None:
    torch.manual_seed(spec["seed"])
    kwargs = spec["kwargs"]
    G = n3.Generator(**kwargs).eval()
    randomize(G, spec["seed"] + 100)
    g = torch.Generator().manual_seed(spec["seed"] + 200)
    n = 2
    z = torch.randn([n, G.z_dim], generator=g)
    c = torch.eye(G.c_dim)[torch.arange(n) % G.c_dim] if G.c_dim else torch.zeros([n, 0])
    cc = c if G.c_dim else None
    with torch.no_grad():  # ToRGB weights scaled so that these images have a standard deviation of 0.5
        getattr(G.synthesis, G.synthesis.layer_names[-1]).weight.mul_(0.5 / G(z, cc).std())
    transform = torch.as_tensor(transform_matrix(0.15, -0.1, 20.0), dtype=torch.float32)
    critical = next(ln for ln in G.synthesis.layer_names if getattr(G.synthesis, ln).is_critically_sampled)
    taps = {"input": G.synthesis.input, "L0": getattr(G.synthesis, G.synthesis.layer_names[0]), "critical": getattr(G.synthesis, critical)}
    seen = {}
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o[0, :CROP].detach().clone()))
             for k, m in taps.items()]

    out = {}
    with torch.no_grad():
        out["ws"] = G.mapping(z, cc)
        out["ws_trunc"] = G.mapping(z, cc, truncation_psi=PSI, truncation_cutoff=CUTOFF)
        out["img"] = G.synthesis(out["ws"], noise_mode="const")
        out.update({f"feat_{k}": v for k, v in seen.items()})
        for h in hooks:
            h.remove()
        out["img_trunc"] = G(z, cc, truncation_psi=PSI, truncation_cutoff=CUTOFF, noise_mode="const")
        G.synthesis.input.transform.copy_(transform)
        out["img_transform"] = G.synthesis(out["ws"], noise_mode="const")
        G.synthesis.input.transform.copy_(torch.eye(3))
    proj = projection(out["img"].shape)
    ws = out["ws"].clone().requires_grad_(True)
    out["grad_ws"] = torch.autograd.grad((G.synthesis(ws) * proj).sum(), ws)[0]

    arrays = {f"G.{k}": v.detach().numpy() for k, v in G.state_dict().items()}
    arrays.update({"in.z": z.numpy(), "in.c": c.numpy(), "in.transform": transform.numpy()})
    arrays.update({f"out.{k}": v.detach().numpy() for k, v in out.items()})
    recorded = {}  # what the official constructor stored on each layer (a pickle carries the same)
    for ln in G.synthesis.layer_names:
        layer = getattr(G.synthesis, ln)
        recorded[ln] = {a: (int(getattr(layer, a)[0]) if a.endswith("_size") else
                            [int(v) for v in layer.padding] if a == "padding" else
                            getattr(layer, a).item() if isinstance(getattr(layer, a), np.generic) else getattr(layer, a))
                        for a in LAYER_ATTRS}
    base = outdir / f"official_sg3{name}_tiny"
    np.savez_compressed(base.with_suffix(".npz"), **arrays)
    meta = {
        "source": "NVlabs/stylegan3 training/networks_stylegan3.py, CPU, reference ops, float32",
        "config": name.upper(),
        "G_kwargs": kwargs,
        "crossover": {"psi": PSI, "cutoff": CUTOFF},
        "layers": recorded,
        "intermediate": {"feat_input": "synthesis.input", "feat_L0": G.synthesis.layer_names[0],
                         "feat_critical": critical, "crop": f"sample 0, channels [:{CROP}]"},
        "calls": [
            "ws = G.mapping(z, c)",
            f"ws_trunc = G.mapping(z, c, truncation_psi={PSI}, truncation_cutoff={CUTOFF})",
            "img = G.synthesis(ws, noise_mode='const')  (feat_*: forward hooks during this call)",
            f"img_trunc = G(z, c, truncation_psi={PSI}, truncation_cutoff={CUTOFF}, noise_mode='const')",
            "img_transform = G.synthesis(ws) with G.synthesis.input.transform = in.transform",
            "grad_ws = d sum(G.synthesis(ws) * proj) / d ws, proj[n, c, y, x] = sin(0.37 (y W + x) + 1.3 c + 3 n)",
        ],
    }
    base.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    size = base.with_suffix(".npz").stat().st_size
    print(f"{base}.npz: {len(arrays)} arrays, {size / 1024:.0f} KiB; img range "
          f"[{out['img'].min():.3f}, {out['img'].max():.3f}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("official", type=Path, help="root of an NVlabs/stylegan3 checkout (outside this repository)")
    ap.add_argument("outdir", type=Path, help="where to write official_sg3{t,r}_tiny.{npz,json}")
    args = ap.parse_args()
    n3 = import_official(args.official)
    torch.set_num_threads(1)
    for name, spec in CONFIGS.items():
        make(n3, name, spec, args.outdir)


if __name__ == "__main__":
    main()
