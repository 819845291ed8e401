"""Export a generator to ONNX: z (or ws) [+ class labels] -> image, truncation and noise baked in.

The graph is traced by torch.onnx's exporter (`dynamo=True`, torch.export underneath) from
`ExportedGenerator`, a wrapper that fixes what ONNX cannot take as a float argument: psi, the
noise mode and (for progressive networks) the level of detail are constants of the graph, the noise is the network's stored constant noise (or none),
and modulated convolutions run in their unfused form (scale the activations around one shared
convolution) because the fused form's grouped convolution has a group count equal to the batch,
which a dynamic batch axis cannot express. Both forms compute the same function
(tests/test_ops.py), so the exported graph matches `G(z, c, psi, noise_mode=...)`.

StyleGAN3 (version 3) networks export with the ops' reference forms: the fast `filtered_lrelu`
decides on in-place work from storage pointers, which torch.export's fake tensors do not have;
the reference forms compute the same function (tests/test_stylegan3_ops.py), and ONNX Runtime
matches `G` to ~1e-7 (tests/test_stylegan3_cli.py).

`onnx` and `onnxruntime` are optional (`pip install stylegan[onnx]`); `onnxscript` is what the
torch exporter itself imports.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

import contextlib

import torch
from torch import nn

from .. import perf
from ..models import Generator
from .checkpoint import write_atomic

__all__ = ["ExportOptions", "ExportedGenerator", "export_onnx", "onnx_missing", "ONNX_INSTALL_HINT"]

ONNX_INSTALL_HINT = "pip install 'stylegan[onnx]'  (onnx, onnxruntime, onnxscript)"


@dataclass(frozen=True)
class ExportOptions:
    psi: float = 1.0  # truncation towards w_avg on every layer (1: none)
    noise: Literal["const", "none"] = "const"
    batch: Union[int, Literal["dynamic"]] = "dynamic"
    w_input: bool = False  # take ws [N, num_ws, w_dim] instead of z [N, z_dim]
    opset: int = 18

    def __post_init__(self) -> None:
        if self.noise not in ("const", "none"):
            raise ValueError(f"noise must be 'const' or 'none' (random noise cannot be baked into a graph), "
                             f"got {self.noise!r}")
        if self.batch != "dynamic" and (not isinstance(self.batch, int) or self.batch < 1):
            raise ValueError(f"batch must be a positive integer or 'dynamic', got {self.batch!r}")


class ExportedGenerator(nn.Module):
    """G with psi and noise fixed: forward(z [N, z_dim] or ws [N, num_ws, w_dim], c [N, c_dim]?)."""

    def __init__(self, G: Generator, opts: ExportOptions):
        super().__init__()
        self.G, self.opts = G, opts
        # Progressive (growing) networks read their level of detail from a buffer at run time; the
        # graph fixes today's value, as it fixes psi and the noise.
        lod = getattr(G.synthesis, "lod", None)
        self.synthesis_kwargs = {"lod": float(lod)} if isinstance(lod, torch.Tensor) else {}

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        G, o = self.G, self.opts
        if o.w_input:
            ws = G.truncate(x, o.psi) if o.psi != 1 else x  # [N, num_ws, w_dim]
        else:
            ws = G.mapping(x, c, psi=o.psi)  # [N, num_ws, w_dim]
        return G.synthesis(ws, noise_mode=o.noise, fused_modconv=False,
                           **self.synthesis_kwargs)  # [N, C, H, W] in [-1, 1]


def onnx_missing() -> str | None:
    """The first of the export/runtime packages that is not installed, or None."""
    import importlib.util

    return next((m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None), None)


def example_inputs(G: Generator, opts: ExportOptions, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Inputs of the exported graph's shapes: (z or ws,) + (c,) for conditional networks."""
    n = opts.batch if opts.batch != "dynamic" else batch
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn([n, G.num_ws, G.w_dim], generator=gen) if opts.w_input
         else torch.randn([n, G.z_dim], generator=gen))
    if G.c_dim == 0:
        return (x,)
    c = torch.zeros([n, G.c_dim])
    c[:, 0] = 1
    return x, c


def input_names(G: Generator, opts: ExportOptions) -> list[str]:
    return ["ws" if opts.w_input else "z"] + (["c"] if G.c_dim else [])


def export_onnx(G: Generator, dest: str | os.PathLike, opts: ExportOptions) -> dict:
    """Write G as an ONNX model (checked with onnx.checker); returns a summary of its interface."""
    missing = onnx_missing()
    if missing:
        raise ModuleNotFoundError(f"ONNX export needs the '{missing}' package: {ONNX_INSTALL_HINT}")
    import onnx

    model = ExportedGenerator(G.cpu().eval().requires_grad_(False), opts).eval()
    inputs = example_inputs(G, opts)
    names = input_names(G, opts)
    kwargs: dict = {}
    if opts.batch == "dynamic":
        batch = torch.export.Dim("batch", min=1)
        kwargs["dynamic_shapes"] = tuple({0: batch} for _ in inputs)
    # StyleGAN3: the reference op forms (the fast filtered_lrelu reads storage pointers; module docstring).
    forms = perf.fast_paths(False) if G.cfg.version == 3 else contextlib.nullcontext()
    with torch.no_grad(), forms:
        # optimize=False: onnxscript's graph optimizer (0.7) folds `x + 1e-8` into `x` as if it
        # added zero, which turns the eps of every rsqrt(mean(x^2) + eps) into a division by zero
        # on flat feature maps (NaN from StyleGAN v1's instance norm). ONNX Runtime still applies
        # its own graph optimizations when it loads the model.
        program = torch.onnx.export(model, inputs, dynamo=True, input_names=names, output_names=["img"],
                                    opset_version=opts.opset, verbose=False, optimize=False, **kwargs)
    proto = program.model_proto
    onnx.checker.check_model(proto, full_check=True)
    write_atomic(Path(dest), lambda tmp: onnx.save(proto, tmp))
    shapes = {name: ["N" if opts.batch == "dynamic" else t.shape[0], *t.shape[1:]] for name, t in zip(names, inputs)}
    return {"inputs": shapes, "output": ["N" if opts.batch == "dynamic" else opts.batch, G.img_channels,
                                         G.img_resolution, G.img_resolution], "opset": opts.opset}
