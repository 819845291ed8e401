"""Make the equivariance-metric parity fixture (tests/data/official_sg3_equivariance.{npz,json}) by
running NVIDIA's own code (`metrics/equivariance.py` of a local NVlabs/stylegan3 checkout, never
copied into this repository) on the CPU, float32.

    git --git-dir=<mirror of NVlabs/stylegan3> archive HEAD | tar -x -C /tmp/sg3
    .venv/bin/python scripts/make-eq-fixture.py /tmp/sg3 tests/data

Two parts:
- ops: NVIDIA's integer / fractional translation, fractional rotation and pseudo-rotation (and their
  masks) of fixed random images for fixed amounts, and its band-limit filters for one angle;
- networks: the tiny official StyleGAN3 T and R generators of src/stylegan/selftest/data
  (official_sg3{t,r}_tiny.npz, rebuilt with NVIDIA's networks_stylegan3 from the weights stored
  there) run through NVIDIA's `compute_equivariance_metrics` for each metric, 8 samples in 2
  batches of 4, with torch's RNG seeded and labels for T fixed; the z, c and transform amounts it
  drew are recorded (wrapping its functions) along with its PSNR. Each sample's squared-error sum
  and valid count are then recomputed one by one with NVIDIA's ops, and their total must give
  NVIDIA's PSNR again (checked here: 2e-3 dB; batches of 4 and single
  samples round differently in float32).
tests/test_equivariance.py compares our ops and our per-sample errors against these numbers.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_checkout import use_checkout  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NETS = {"t": REPO / "src/stylegan/selftest/data/official_sg3t_tiny.npz",
        "r": REPO / "src/stylegan/selftest/data/official_sg3r_tiny.npz"}
KINDS = {"int": "compute_eqt_int", "frac": "compute_eqt_frac", "rot": "compute_eqr"}

# Image-op cases: amounts in image widths / heights (translations) or radians (rotations).
INT_SHIFTS = [(0.125, -0.0625), (-0.3, 0.21), (0.0, 0.0), (0.04, 0.5), (1.2, 0.1)]
FRAC_SHIFTS = [(0.1, -0.03), (-0.2, 0.047), (0.0, 0.0), (0.37, -0.5), (0.013, 0.9), (1.5, 0.0)]
ANGLES = [0.3, -2.0, math.pi / 2, 3.0, 0.0, -0.05]
FILTER_ANGLE = 0.7


def import_official(root: Path) -> types.SimpleNamespace:
    """NVIDIA's equivariance metrics, metric utilities and StyleGAN3 networks from a checkout, with
    stand-ins for what CPU use never needs."""
    use_checkout(root, "metrics/equivariance.py")
    import warnings

    warnings.filterwarnings("ignore", message="torch.meshgrid")  # their filter design calls it bare
    from metrics import equivariance, metric_utils  # noqa: E402
    from training import networks_stylegan3  # noqa: E402
    return types.SimpleNamespace(eq=equivariance, mu=metric_utils, n3=networks_stylegan3)


def op_cases(eq, out: dict) -> dict:
    """NVIDIA's image ops on fixed random images; fills `out`, returns the JSON description."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn([2, 2, 24, 24], generator=g)  # square: all ops
    xr = torch.randn([1, 2, 16, 20], generator=g)  # H != W: translations
    out["in.x"], out["in.x_rect"] = x, xr
    for name, img in (("", x), ("rect_", xr)):
        for j, (tx, ty) in enumerate(INT_SHIFTS):
            out[f"out.{name}int{j}"], out[f"mask.{name}int{j}"] = eq.apply_integer_translation(img, tx, ty)
        for j, (tx, ty) in enumerate(FRAC_SHIFTS):
            out[f"out.{name}frac{j}"], out[f"mask.{name}frac{j}"] = eq.apply_fractional_translation(img, tx, ty)
    for j, angle in enumerate(ANGLES):
        out[f"out.rot{j}"], out[f"mask.rot{j}"] = eq.apply_fractional_rotation(x, angle)
        out[f"out.pseudo{j}"], out[f"mask.pseudo{j}"] = eq.apply_fractional_pseudo_rotation(x, angle)
    mat = eq.rotation_matrix(torch.tensor(FILTER_ANGLE))
    out["filter.up4"] = eq.construct_affine_bandlimit_filter(mat, a=3, amax=6, up=4)
    out["filter.up1"] = eq.construct_affine_bandlimit_filter(mat, a=3, amax=6, up=1)
    return {
        "in.x": "torch.randn([2, 2, 24, 24]) after torch.Generator().manual_seed(11); in.x_rect: the next [1, 2, 16, 20]",
        "int": {"amounts": INT_SHIFTS, "call": "out.intJ, mask.intJ = apply_integer_translation(x, tx, ty) "
                                                "(out.rect_intJ: of x_rect)"},
        "frac": {"amounts": FRAC_SHIFTS, "call": "out.fracJ, mask.fracJ = apply_fractional_translation(x, tx, ty) "
                                                  "(out.rect_fracJ: of x_rect)"},
        "rot": {"amounts": ANGLES, "call": "out.rotJ, mask.rotJ = apply_fractional_rotation(x, angle); "
                                           "out.pseudoJ, mask.pseudoJ = apply_fractional_pseudo_rotation(x, angle)"},
        "filter": {"angle": FILTER_ANGLE, "call": "filter.upU = construct_affine_bandlimit_filter("
                                                  "rotation_matrix(angle), a=3, amax=6, up=U)"},
    }


def official_generator(n3, path: Path):
    meta = json.loads(path.with_suffix(".json").read_text())
    G = n3.Generator(**meta["G_kwargs"]).eval().requires_grad_(False)
    with np.load(path) as data:
        state = {k[2:]: torch.from_numpy(data[k].copy()) for k in data.files if k.startswith("G.")}
    G.load_state_dict(state, strict=True)
    return G


def run_official(off, G, kind: str, seed: int, num: int = 8, batch: int = 4) -> dict:
    """NVIDIA's compute_equivariance_metrics for one metric; records what it drew."""
    eq, mu = off.eq, off.mu
    seen = {"z": [], "c": [], "amount": []}
    wrapped = {}

    def record(fname, amount_of):
        orig = getattr(eq, fname)
        wrapped[fname] = orig

        def f(x, *args, **kwargs):
            seen["amount"].append(amount_of(*args))
            return orig(x, *args, **kwargs)
        setattr(eq, fname, f)

    record("apply_integer_translation", lambda tx, ty: [float(tx), float(ty)])
    record("apply_fractional_translation", lambda tx, ty: [float(tx), float(ty)])
    record("apply_fractional_rotation", lambda angle: float(angle))
    labels = torch.eye(G.c_dim)[torch.arange(num) % G.c_dim] if G.c_dim else torch.zeros([num, 0])
    orig_labels = mu.iterate_random_labels

    def fixed_labels(opts, batch_size):  # theirs draws from a dataset; fixed one-hot labels here
        for start in range(0, num, batch_size):
            yield labels[start : start + batch_size]
    mu.iterate_random_labels = fixed_labels
    def capture(_module, _args, kwargs):  # theirs calls G.mapping(z=z, c=c)
        seen["z"].append(kwargs["z"].clone())
        seen["c"].append(kwargs["c"].clone())
    hook = G.mapping.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        torch.manual_seed(seed)
        opts = mu.MetricOptions(G=G, G_kwargs=dict(force_fp32=True), device=torch.device("cpu"))
        value = eq.compute_equivariance_metrics(opts, num_samples=num, batch_size=batch, **{KINDS[kind]: True})
    finally:
        hook.remove()
        mu.iterate_random_labels = orig_labels
        for k, v in wrapped.items():
            setattr(eq, k, v)
    z, c = torch.cat(seen["z"]), torch.cat(seen["c"])
    amounts = torch.tensor(np.repeat(np.asarray(seen["amount"], np.float32), batch, axis=0))  # per sample
    return dict(psnr=float(value), z=z, c=c, amounts=amounts)


def per_sample(off, G, kind: str, z, c, amounts) -> torch.Tensor:
    """Each sample's (squared error sum, valid count) with NVIDIA's ops, one sample at a time. [N, 2]"""
    eq = off.eq
    M = G.synthesis.input.transform
    rows = []
    for i in range(z.shape[0]):
        ws = G.mapping(z[i : i + 1], c[i : i + 1])
        M.copy_(torch.eye(3))
        ref = G.synthesis(ws, noise_mode="const", force_fp32=True)
        if kind == "rot":
            angle = amounts[i]
            M.copy_(eq.rotation_matrix(-angle))
            img = G.synthesis(ws, noise_mode="const", force_fp32=True)
            a, ma = eq.apply_fractional_rotation(ref, angle)
            b, mb = eq.apply_fractional_pseudo_rotation(img, angle)
            err, mask = (a - b).square() * (ma * mb), ma * mb
        else:
            t = amounts[i]
            M.copy_(torch.eye(3))
            M[:2, 2] = -t
            img = G.synthesis(ws, noise_mode="const", force_fp32=True)
            op = eq.apply_integer_translation if kind == "int" else eq.apply_fractional_translation
            a, mask = op(ref, t[0], t[1])
            err = (a - img).square() * mask
        rows.append(torch.stack([err.to(torch.float64).sum(), mask.to(torch.float64).sum()]))
    M.copy_(torch.eye(3))
    return torch.stack(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("official", type=Path, help="root of an NVlabs/stylegan3 checkout (outside this repository)")
    ap.add_argument("outdir", type=Path, help="where to write official_sg3_equivariance.{npz,json}")
    args = ap.parse_args()
    off = import_official(args.official)
    torch.set_num_threads(1)
    out: dict = {}
    meta = {"source": "NVlabs/stylegan3 metrics/equivariance.py, CPU, float32", "ops": op_cases(off.eq, out),
            "networks": {}}
    with torch.no_grad():
        for net, path in NETS.items():
            G = official_generator(off.n3, path)
            meta["networks"][net] = {"generator": str(path.relative_to(REPO)), "metrics": {}}
            for k, kind in enumerate(KINDS):
                r = run_official(off, G, kind, seed=100 + k)
                rows = per_sample(off, G, kind, r["z"], r["c"], r["amounts"])
                total = rows.sum(0)
                again = float(np.log10(2) * 20 - (total[0] / total[1]).log10() * 10)
                assert abs(again - r["psnr"]) < 2e-3, (net, kind, again, r["psnr"])
                psnrs = np.log10(2) * 20 - (rows[:, 0] / rows[:, 1]).log10().numpy() * 10
                pre = f"{net}.{kind}."
                out.update({pre + "z": r["z"], pre + "c": r["c"], pre + "amounts": r["amounts"], pre + "rows": rows})
                meta["networks"][net]["metrics"][kind] = {"psnr": r["psnr"], "psnr_from_rows": again,
                                                          "per_sample_psnr": [float(p) for p in psnrs]}
                print(f"{net} {kind}: official {r['psnr']:.4f} dB, from per-sample rows {again:.4f} dB; "
                      f"per sample {np.round(psnrs, 2).tolist()}")
    meta["calls"] = [
        "<net>.<kind>.psnr: compute_equivariance_metrics(opts, num_samples=8, batch_size=4, compute_<kind>=True), "
        "torch.manual_seed(100 + k) for k = int, frac, rot; opts.G_kwargs = {force_fp32: True}; "
        "labels for T: one-hot eye(3)[i % 3]",
        "<net>.<kind>.z / .c / .amounts: what it drew per sample (one amount per batch of 4, repeated): "
        "t [8, 2] (image widths) or angle [8] (radians)",
        "<net>.<kind>.rows: per sample [sum((T[g(ws)] - g(ws; T))^2 * mask), sum(mask)] (float64) with NVIDIA's ops",
    ]
    arrays = {}
    for k, v in out.items():
        v = v.detach().numpy()
        arrays[k] = v.astype(np.uint8) if k.startswith("mask.") else v
    base = args.outdir / "official_sg3_equivariance"
    np.savez_compressed(base.with_suffix(".npz"), **arrays)
    base.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{base}.npz: {len(arrays)} arrays, {base.with_suffix('.npz').stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
