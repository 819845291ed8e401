"""`stylegan info`: what a checkpoint holds."""
from __future__ import annotations

import json
from pathlib import Path

import click


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@click.command("info")
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(path, as_json):
    """Print the networks, configs, resolution and parameter counts of PATH (a file or http(s) URL)."""
    import torch

    from ..io.checkpoint import CheckpointError, read_checkpoint
    from ..io.load import read_foreign, sniff
    from ..io.remote import is_url, resolve_path
    from ..io.serialize import to_dict

    report: dict = {"path": path, "networks": {}}
    try:
        if not is_url(path) and not Path(path).is_file():
            raise CheckpointError(f"no such file: {path}")
        local = resolve_path(path)  # a URL: downloaded once into the cache
        kind = sniff(local)
        if kind in ("pickle", "torch"):
            foreign = read_foreign(local)
            report["format"] = {"pickle": "official pickle", "torch": "rosinality checkpoint"}[kind]
            report["info"] = {k: v for k, v in foreign.info.items() if k != "networks"}
            report["notes"] = list(foreign.notes)
            for name, net in foreign.networks.items():
                if net.error is not None:
                    report["notes"].append(f"{name}: not readable: {net.error}")
                    continue
                m = net.build(torch.device("cpu"))
                report["networks"][name] = {"config": to_dict(m.cfg), "parameters": _count(m)}
                report["notes"] += [f"{name}: {n}" for n in net.notes]
        else:
            ckpt = read_checkpoint(local)
            report["format"] = "stylegan safetensors"
            report["info"] = ckpt.info
            report["has_training_state"] = ckpt.state_skeleton is not None
            for name in ckpt.modules:
                m = ckpt.build(name)
                report["networks"][name] = {"config": to_dict(m.cfg), "parameters": _count(m)}
    except CheckpointError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{path}: {report['format']}")
    for k, v in report.get("info", {}).items():
        click.echo(f"  {k}: {v}")
    for name, net in report["networks"].items():
        cfg = net["config"]
        res = cfg.get("img_resolution")
        extra = f", num_ws {2 * (res.bit_length() - 1) - 2}, z {cfg['z_dim']}, w {cfg['w_dim']}" if "z_dim" in cfg else ""
        click.echo(f"  {name}: StyleGAN{cfg.get('version', 2)} {cfg.get('architecture')} "
                   f"{res}x{res}x{cfg.get('img_channels')}, c_dim {cfg.get('c_dim')}{extra}, "
                   f"{net['parameters']:,} parameters")
        click.echo(f"    config: {json.dumps(cfg)}")
    for note in report.get("notes", []):
        click.echo(f"  note: {note}")
