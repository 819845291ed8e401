"""Bilinear `grid_sample` with a double backward on every PyTorch version.

ADA (Karras et al. 2020, App. B.1) resamples augmented images with a bilinear `grid_sample`, and
R1 is computed on augmented reals, so the resampling must be differentiable twice w.r.t. the
images. `torch.nn.functional.grid_sample` only has that double backward in recent PyTorch releases
(earlier ones raise "derivative for grid_sampler_2d_backward is not implemented"):
`grid_sample_gradfix` provides it with two small autograd Functions; `grid_sample_native` is the
plain op, used when `native_grid_sample_has_double_backward()` says this PyTorch can.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class _GridSampleBackward(torch.autograd.Function):
    """grad_input = A(grid)^T grad_output (bilinear, zero padding). Linear in grad_output, so its
    own derivative is `grid_sample` again; it does not depend on the input."""

    @staticmethod
    def forward(ctx, grad_output: Tensor, x: Tensor, grid: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(grid)
        op = torch.ops.aten.grid_sampler_2d_backward.default
        grad_x, _ = op(grad_output, x, grid, 0, 0, False, [True, False])
        return grad_x

    @staticmethod
    def backward(ctx, grad2_x: Tensor):  # type: ignore[override]
        (grid,) = ctx.saved_tensors
        if ctx.needs_input_grad[2]:
            raise NotImplementedError("grid_sample_gradfix: second derivative w.r.t. the grid")
        grad2_out = _GridSample.apply(grad2_x, grid) if ctx.needs_input_grad[0] else None
        return grad2_out, None, None


class _GridSample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, grid: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, grid)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        x, grid = ctx.saved_tensors
        grad_x = grad_grid = None
        if ctx.needs_input_grad[0]:
            grad_x = _GridSampleBackward.apply(grad_out, x, grid)
        if ctx.needs_input_grad[1]:  # first-order only
            op = torch.ops.aten.grid_sampler_2d_backward.default
            _, grad_grid = op(grad_out, x, grid, 0, 0, False, [False, True])
        return grad_x, grad_grid


def grid_sample_native(x: Tensor, grid: Tensor) -> Tensor:
    """`F.grid_sample`, bilinear, zero padding, align_corners=False. x: [N, C, H, W]; grid: [N, h, w, 2]."""
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def grid_sample_gradfix(x: Tensor, grid: Tensor) -> Tensor:
    """Same as `grid_sample_native`, with a double backward w.r.t. `x` on every PyTorch version
    (custom autograd Functions whose backward is again differentiable). The grid gets first-order
    gradients only."""
    return _GridSample.apply(x, grid)


def native_grid_sample_has_double_backward() -> bool:
    """Probe whether this PyTorch differentiates `grid_sample`'s backward w.r.t. the input."""
    x = torch.ones(1, 1, 2, 2, requires_grad=True)
    grid = torch.full((1, 1, 1, 2), 0.25)
    try:
        (gx,) = torch.autograd.grad(grid_sample_native(x, grid).sum() ** 2, x, create_graph=True)
        torch.autograd.grad(gx.sum(), x)
        return True
    except (RuntimeError, NotImplementedError):
        return False


__all__ = ["grid_sample_native", "grid_sample_gradfix", "native_grid_sample_has_double_backward"]
