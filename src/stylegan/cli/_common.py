"""Shared CLI plumbing: device choice, network loading with clear errors."""
from __future__ import annotations

import click
import torch

from ..device import DeviceUnavailable
from ..device import resolve_device as _resolve_device


def resolve_device(name: str | None) -> torch.device:
    """'auto' -> cuda, then mps, then cpu; explicit names are checked for availability.

    On CPU the (short-lived, single-purpose) CLI process also keeps freed memory for reuse
    (`perf.retain_malloc`): 256 px generation at batch 16 runs 3x faster (docs/performance.md).
    """
    try:
        dev = _resolve_device(name or "auto")
    except DeviceUnavailable as e:
        raise click.ClickException(str(e)) from None
    if dev.type == "cpu":
        from ..perf import retain_malloc

        retain_malloc()
    return dev


def load_network(path: str, device: torch.device, which: str | None = None):
    """stylegan.load with every expected failure turned into a one-line CLI error."""
    from ..io.checkpoint import CheckpointError
    from ..io.load import load

    try:
        return load(path, which=which, device=device)
    except CheckpointError as e:
        raise click.ClickException(str(e)) from None
    except ValueError as e:  # official-format errors derive from ValueError too
        raise click.ClickException(f"{path}: {e}") from None


device_option = click.option("--device", default="auto", show_default=True,
                             help="cpu, cuda, cuda:N, mps, or auto.")


precision_option = click.option(
    "--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
    help="bf16/fp16 in the highest resolutions (StyleGAN2 networks; fast only on GPUs and CPUs with "
         "AVX512-BF16/AMX).")


def use_precision(G, name: str, device: torch.device):
    """The precision scope for a generation command; says so when the device would emulate it."""
    from ..nn.precision import precision_problem
    from ..synth.sample import precision_context

    problem = precision_problem(name, device)
    if problem:
        click.echo(f"warning: {problem}", err=True)
    try:
        return precision_context(G, name, device, warn=False)
    except ValueError as e:
        raise click.ClickException(str(e)) from None


def bool_flag(*names: str, default: bool = False, **kwargs):
    """A flag that also takes the official tools' BOOL value: `--save-video`, `--save-video=false`,
    `--mirror=1`, `--mirror 0`.

    NVIDIA's scripts declare booleans as `type=bool` options that need a value (`--mirror=1`); ours
    are flags. Click's optional-value option accepts both, so official command lines keep working
    and ours stay short. The value is never taken from a following `--option`."""
    return click.option(*names, type=click.BOOL, is_flag=False, flag_value=True, default=default,
                        show_default=True, metavar="[BOOL]", **kwargs)


def dash_underscores(token: str) -> str:
    """Option names with '_' read as '-': `--projected_w` is `--projected-w`.

    The official READMEs print `--projected_w` and `--max_images`, which their own scripts refuse
    (stylegan2-ada-pytorch issues #273, #302); users paste those lines, so the commands that stand
    in for the official tools take both spellings (click's token_normalize_func: option names and
    choice values only, never other values such as paths or metric ids)."""
    return token.replace("_", "-")


OFFICIAL_SPELLINGS = {"token_normalize_func": dash_underscores}  # context_settings of those commands


def input_transform(G, translate, rotate):
    """--translate X,Y / --rotate DEG -> the StyleGAN3 input-transform scope (gen_images.py's), with a
    one-line error for networks without a Fourier-feature input."""
    from ..synth.sample import input_transform_scope, parse_vec2

    try:
        return input_transform_scope(G, None if translate is None else parse_vec2(translate), rotate)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
