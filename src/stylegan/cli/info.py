"""`stylegan info`: what a checkpoint holds."""
from __future__ import annotations

import json
from pathlib import Path

import click


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _describe(module) -> dict:
    """What `info` reports of one network: its config, parameter count and, for StyleGAN3, the
    signal specification of every synthesis layer (sampling rates, cutoffs, filters)."""
    from ..io.serialize import to_dict

    out = {"config": to_dict(module.cfg), "parameters": _count(module)}
    if getattr(module.cfg, "version", 2) == 3 and hasattr(module, "synthesis"):
        from ..models.stylegan3 import synthesis_schedule

        spec_in, specs = synthesis_schedule(module.cfg)
        out["stylegan3"] = {"config": module.cfg.sg3.config_name, "num_ws": module.cfg.num_ws,
                            "input": to_dict(spec_in), "layers": [to_dict(s) for s in specs]}
    return out


def _stylegan3_lines(sg3: dict) -> list[str]:
    """The layer table of a StyleGAN3 generator: rates s, cutoff f_c, stopband f_t, filters."""
    i = sg3["input"]
    lines = [f"    input: {i['channels']} Fourier features on {i['size']}x{i['size']}, sampling rate "
             f"{i['sampling_rate']:g}, bandwidth {i['bandwidth']:g}",
             f"    {'layer':<14} {'size':>5} {'ch':>5}  {'sampling rate in>tmp>out':<24} {'cutoff':>7} "
             f"{'stopband':>8}  {'up':>2} {'down':>4}  filters"]
    for L in sg3["layers"]:
        taps = "none" if L["up_taps"] == 1 and L["down_taps"] == 1 else (
            f"{L['up_taps']} / {L['down_taps']}" + (" radial" if L["down_radial"] else ""))
        kind = " torgb" if L["is_torgb"] else " critical" if L["is_critically_sampled"] else ""
        rates = f"{L['in_sampling_rate']}>{L['tmp_sampling_rate']}>{L['out_sampling_rate']}"
        lines.append(f"    {L['name']:<14} {L['out_size']:>5} {L['out_channels']:>5}  {rates:<24} "
                     f"{L['out_cutoff']:>7.3f} {L['out_cutoff'] + L['out_half_width']:>8.3f}  "
                     f"{L['up_factor']:>2} {L['down_factor']:>4}  {taps}{kind}")
    return lines


@click.command("info")
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(path, as_json):
    """Print the networks, configs, resolution and parameter counts of PATH (a file or http(s) URL)."""
    import torch

    from ..io.checkpoint import CheckpointError, read_checkpoint
    from ..io.load import read_foreign, sniff
    from ..io.remote import is_url, resolve_path

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
                report["networks"][name] = _describe(m)
                report["notes"] += [f"{name}: {n}" for n in net.notes]
        else:
            ckpt = read_checkpoint(local)
            report["format"] = "stylegan safetensors"
            report["info"] = ckpt.info
            report["has_training_state"] = ckpt.state_skeleton is not None
            for name in ckpt.modules:
                m = ckpt.build(name)
                report["networks"][name] = _describe(m)
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
        sg3 = net.get("stylegan3")
        num_ws = sg3["num_ws"] if sg3 else 2 * (res.bit_length() - 1) - 2
        extra = f", num_ws {num_ws}, z {cfg['z_dim']}, w {cfg['w_dim']}" if "z_dim" in cfg else ""
        kind = f"StyleGAN3-{sg3['config']}" if sg3 else f"StyleGAN{cfg.get('version', 2)} {cfg.get('architecture')}"
        click.echo(f"  {name}: {kind} {res}x{res}x{cfg.get('img_channels')}, c_dim {cfg.get('c_dim')}{extra}, "
                   f"{net['parameters']:,} parameters")
        click.echo(f"    config: {json.dumps(cfg)}")
        if sg3:
            for line in _stylegan3_lines(sg3):
                click.echo(line)
    for note in report.get("notes", []):
        click.echo(f"  note: {note}")
