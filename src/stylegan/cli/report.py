"""`stylegan report`: progress.png and curves.png of a training run (and its digit coverage)."""
from __future__ import annotations

import click


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--digits/--no-digits", default=None,
              help="Measure how many MNIST digits each snapshot draws (default: for builtin:mnist runs).")
@click.option("--seeds", default="0-7", show_default=True, help="Latents of the progress rows.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the digit measures as JSON lines.")
def command(run_dir, digits, seeds, device, as_json):
    """Write RUN_DIR/progress.png (G_ema of every snapshot on the same latents, one row each) and
    RUN_DIR/curves.png (losses, penalties, augment p and, for digits, the coverage over kimg)."""
    import json

    from ..training.report import ReportError, run_report
    from ..synth.sample import parse_range

    try:
        report = run_report(run_dir, seeds=parse_range(seeds), digits=digits, device=device)
    except ReportError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {report.progress}")
    click.echo(f"wrote {report.curves}")
    for kimg, d in report.digits:
        click.echo(json.dumps({"kimg": kimg, **d.to_dict()}) if as_json else f"{kimg:g} kimg: {d.line()}")
    if report.final_digits is not None and not as_json:
        click.echo(f"final snapshot {report.digits[-1][0]:g} kimg: {report.final_digits.line()}")
