"""`stylegan metrics`: compute quality metrics for a network, or train an attribute classifier
for linear separability.

    stylegan metrics --network G.safetensors --data ffhq.zip --metrics fid50k_full,kid50k_full
    stylegan metrics --network G.pkl --metrics ppl2_wend --proxy            # offline proxies
    stylegan metrics --network G.pkl --metrics ls --classifier attrs.safetensors
    stylegan metrics --train-classifier --data celeba-attrs.zip --out attrs.safetensors
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import click

from ._common import OFFICIAL_SPELLINGS, bool_flag

def load_network(path: str, device: Any):
    """Load the generator (EMA) with `stylegan.load`."""
    try:
        from stylegan import load
    except ImportError as e:
        raise click.ClickException(f"Cannot load networks: stylegan.load is unavailable ({e}).") from e
    G = load(path)
    return G.to(device) if hasattr(G, "to") else G


def open_data(spec: str, use_labels: bool, xflip: bool):
    """Open a dataset with `stylegan.data.dataset.open_dataset`."""
    try:
        from stylegan.data.dataset import open_dataset
    except ImportError as e:
        raise click.ClickException(f"Cannot open datasets: stylegan.data.dataset is unavailable ({e}).") from e
    return open_dataset(spec, use_labels=use_labels, xflip=xflip)


@dataclass
class MetricsJob:
    """Everything one process needs (picklable, for --gpus > 1)."""

    network: str
    data: Optional[str]
    metrics: list
    mirror: bool = False
    batch: int = 32
    device: str = "cpu"
    detector_dir: Optional[str] = None
    cache_dir: Optional[str] = None
    download: Optional[bool] = None
    classifier: Optional[str] = None
    psi: float = 1.0
    noise_mode: str = "random"
    seed: int = 0
    out: Optional[str] = None
    workers: int = 2
    progress: bool = True
    lines: list = field(default_factory=list)


@dataclass(frozen=True)
class TrainingData:
    """The dataset a network was trained on, as its file records it (for --data / --mirror lookup)."""

    path: str
    mirror: bool
    source: str  # where it was found, for the message


def _our_training_data(path: Path) -> Optional[TrainingData]:
    """From our snapshot's info (run.data, training.mirror) or a converted official pickle's
    training_set_kwargs; only the safetensors header is read, not the tensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            info = json.loads((f.metadata() or {}).get("stylegan.info", "{}"))
    except Exception:  # noqa: BLE001 - damaged files are reported by the loader, with its message
        return None
    data = (info.get("run") or {}).get("data")
    if data:
        return TrainingData(str(data), bool((info.get("training") or {}).get("mirror", False)),
                            f"{path.name}: the training run's options")
    return _official_kwargs(info.get("training_set_kwargs"), f"{path.name}: training_set_kwargs")


def _official_kwargs(kwargs: Any, source: str) -> Optional[TrainingData]:
    if isinstance(kwargs, dict) and kwargs.get("path"):
        return TrainingData(str(kwargs["path"]), bool(kwargs.get("xflip", False)), source)
    return None


def training_data(network: str) -> Optional[TrainingData]:
    """The dataset (and x-flip) the network was trained with, as the official calc_metrics.py looks
    it up when --data / --mirror are left out: our snapshots record the run's options, official
    pickles their `training_set_kwargs`. None when the file records none (or cannot be read)."""
    from stylegan.io.load import read_foreign, sniff
    from stylegan.io.remote import resolve_path

    try:
        path = resolve_path(network)
        if not path.is_file():
            return None
        if sniff(path) == "safetensors":
            return _our_training_data(path)
        if sniff(path) == "pickle":
            return _official_kwargs(read_foreign(path).info.get("training_set_kwargs"),
                                    f"{path.name}: training_set_kwargs")
    except (OSError, ValueError):  # the loader reports unreadable networks with its own message
        return None
    return None


def default_out_dir(network: str) -> Optional[Path]:
    """The run directory holding the network (has config.json or stats.jsonl), else None."""
    d = Path(network).resolve().parent
    return d if (d / "config.json").is_file() or (d / "stats.jsonl").is_file() else None


def format_line(result: dict) -> str:
    vals = "  ".join(f"{k} {v:.6g}" for k, v in result["results"].items())
    note = f"  [proxy for {result['proxy_of']}: not comparable with published numbers]" if result.get("proxy_of") else ""
    return f"{result['metric']:<22s} {vals}  ({result['total_time_str']}){note}"


def run_job(job: MetricsJob, rank: int = 0, num_gpus: int = 1) -> list:
    """Compute job.metrics in this process; rank 0 prints and writes JSON lines. Returns results."""
    import torch

    from stylegan.metrics import DetectorProvider, append_metric_jsonl, compute_metric, get_metric
    from stylegan.metrics.errors import MetricError

    device = torch.device(job.device)
    if device.type == "cuda" and num_gpus > 1:
        device = torch.device("cuda", rank)
    if device.type == "cpu":
        from stylegan.perf import retain_malloc

        # As every CPU command does (cli._common.resolve_device): the generator's activations at
        # batch 32 exceed glibc's mmap threshold, and mapping / unmapping them on every batch cost
        # 50 s of system time in a 5k-image metric (docs/performance.md, "Metrics").
        retain_malloc()
    try:
        G = load_network(job.network, device)
    except click.ClickException:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise click.ClickException(f"Cannot load network {job.network}: {e}") from e
    use_labels = bool(getattr(G, "c_dim", 0))
    datasets: dict = {}

    def dataset_for(xflip: bool):
        if job.data is None:
            return None
        if xflip not in datasets:
            try:
                datasets[xflip] = open_data(job.data, use_labels, xflip)
            except click.ClickException:
                raise
            except (OSError, ValueError, KeyError, RuntimeError) as e:
                raise click.ClickException(f"Cannot open dataset {job.data}: {e}") from e
        return datasets[xflip]

    provider = DetectorProvider(device, job.detector_dir, job.cache_dir, job.download)
    out_file = Path(job.out) if job.out else None
    run_dir = default_out_dir(job.network) if out_file is None else None
    results = []
    for name in job.metrics:
        spec = get_metric(name)
        legacy = not (name.endswith("_full") or not spec.needs_dataset)
        ds = dataset_for(job.mirror and legacy) if spec.needs_dataset or use_labels else None
        try:
            result = compute_metric(
                name, G, ds, device=device, batch=job.batch, num_gpus=num_gpus, rank=rank, cache_dir=job.cache_dir,
                psi=job.psi, noise_mode=job.noise_mode, seed=job.seed, mirror=job.mirror, classifier=job.classifier,
                detectors=provider, num_workers=job.workers, progress=job.progress and rank == 0,
            )
        except MetricError as e:
            raise click.ClickException(str(e)) from e
        result["network"] = str(job.network)
        results.append(result)
        if rank == 0:
            click.echo(format_line(result))
            if out_file is not None:
                out_file.parent.mkdir(parents=True, exist_ok=True)
                with open(out_file, "a", encoding="utf-8") as f:
                    f.write(json.dumps(dict(result, snapshot_pkl=str(job.network))) + "\n")
            elif run_dir is not None:
                append_metric_jsonl(run_dir, result, snapshot=job.network)
    return results


def _spawned_job(rank: int, num_gpus: int, job: MetricsJob) -> None:
    """`stylegan.distributed.spawn` target: one process of a multi-GPU (or multi-process CPU) run."""
    import torch

    if job.device.startswith("cuda"):
        torch.cuda.set_device(rank)
    run_job(job, rank, num_gpus)


def train_classifier_cli(data: Optional[str], out: Optional[str], device: str, epochs: int, resolution: int,
                         batch: int, seed: int) -> None:
    from stylegan.metrics.errors import MetricError
    from stylegan.metrics.separability import train_attribute_classifier

    if not data or not out:
        raise click.UsageError("--train-classifier needs --data (a labelled dataset) and --out (the classifier file).")
    dataset = open_data(data, use_labels=True, xflip=False)
    try:
        report = train_attribute_classifier(dataset, out, resolution=resolution, epochs=epochs, batch=batch,
                                            device=device, seed=seed)
    except MetricError as e:
        raise click.ClickException(str(e)) from e
    accs = ", ".join(f"{a:.3f}" for a in report.val_accuracy)
    click.echo(f"Saved attribute classifier to {report.path} (held-out accuracy per attribute: {accs})")


def default_device() -> str:
    from ..device import resolve_device

    return resolve_device("auto").type


@click.command("metrics", context_settings=OFFICIAL_SPELLINGS)
@click.option("--network", "network", metavar="PATH", help="Network: our checkpoint or an official pickle.")
@click.option("--data", metavar="PATH",
              help="Dataset (zip or folder) with the real images. Default: the one the network was trained "
                   "on, when its file records it (our snapshots, official pickles).")
@click.option("--metrics", "metrics", default="fid50k_full", show_default=True, metavar="LIST",
              help="Comma-separated metric ids (--list-metrics shows them all).")
@bool_flag("--mirror", default=None,
           help="X-flip the reals (legacy ids only; *_full ids never flip, as the official). Takes the "
                "official BOOL (--mirror=1). Default: as the network was trained, when --data is looked up.")
@click.option("--gpus", type=click.IntRange(min=1), default=1, show_default=True, help="Number of processes/GPUs.")
@click.option("--detector-dir", type=click.Path(file_okay=False), help="Directory holding inception-2015-12-05.pt / vgg16.pt.")
@click.option("--proxy", is_flag=True, help="Use the offline EfficientNet-Lite0 proxies (ids become *_effnet; not FID).")
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True, help="Batch size per process.")
@click.option("--device", type=click.Choice(["cpu", "cuda", "mps"]), default=None, help="Default: cuda, mps, then cpu.")
@click.option("--out", type=click.Path(dir_okay=False), help="Append JSON lines here (classifier file with --train-classifier).")
@click.option("--classifier", type=click.Path(dir_okay=False), help="Attribute classifier for ls (ours or TorchScript).")
@click.option("--train-classifier", "train_classifier", is_flag=True, help="Train an attribute classifier on --data, save to --out.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="Classifier training epochs.")
@click.option("--classifier-res", type=click.IntRange(min=8), default=64, show_default=True, help="Classifier input resolution.")
@click.option("--trunc", "psi", type=float, default=1.0, show_default=True, help="Truncation psi for generated images.")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="random", show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Base seed for latents.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Cache root (default $STYLEGAN_CACHE or ~/.cache/stylegan).")
@click.option("--offline", is_flag=True, help="Never download detector files.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="Data loader workers.")
@bool_flag("--verbose", default=True, help="Progress bars and the looked-up dataset (official calc_metrics.py's "
                                           "--verbose; --verbose=false for results only).")
@click.option("--list-metrics", "list_only", is_flag=True, help="List metric ids and exit.")
def command(network, data, metrics, mirror, gpus, detector_dir, proxy, batch, device, out, classifier, train_classifier,
            epochs, classifier_res, psi, noise_mode, seed, cache_dir, offline, workers, verbose, list_only) -> None:
    """Compute FID, KID, precision/recall, IS, PPL, linear separability and StyleGAN3 equivariance for a network."""
    from stylegan.metrics import METRICS, get_metric, proxy_for
    from stylegan.metrics.errors import MetricError

    if list_only:
        for mid, spec in METRICS.items():
            click.echo(f"{mid:<22s} {spec.description}")
        return
    device = device or default_device()
    if train_classifier:
        train_classifier_cli(data, out, device, epochs, classifier_res, batch, seed)
        return
    if not network:
        raise click.UsageError("--network is required (or use --train-classifier / --list-metrics).")
    names = [m.strip() for m in metrics.split(",") if m.strip()]
    if not names:
        raise click.UsageError("--metrics is empty.")
    if names == ["none"]:  # the official list value for "compute nothing"
        click.echo("--metrics none: nothing to compute.")
        return
    try:
        for m in names:
            get_metric(m)
        if proxy:
            mapped = [proxy_for(m) if get_metric(m).detector in ("inception", "vgg16") else m for m in names]
            for a, b in zip(names, mapped):
                if a != b:
                    click.echo(f"--proxy: computing {b} instead of {a} (EfficientNet-Lite0 proxy, not {a}).", err=True)
            names = mapped
        needs_data = [m for m in names if get_metric(m).needs_dataset]
    except MetricError as e:
        raise click.ClickException(str(e)) from e
    if data is None and needs_data:
        data, mirror = _look_up_data(network, mirror, needs_data, verbose)
    if device == "cuda" and gpus > 1:
        import torch

        if torch.cuda.device_count() < gpus:
            raise click.ClickException(f"--gpus {gpus} but only {torch.cuda.device_count()} CUDA devices are visible.")
    job = MetricsJob(network=network, data=data, metrics=names, mirror=bool(mirror), batch=batch, device=device,
                     detector_dir=detector_dir, cache_dir=cache_dir, download=False if offline else None,
                     classifier=classifier, psi=psi, noise_mode=noise_mode, seed=seed, out=out, workers=workers,
                     progress=verbose)
    if gpus == 1:
        run_job(job)
        return
    from stylegan import distributed

    distributed.spawn(_spawned_job, gpus, args=(job,), backend="nccl" if device.startswith("cuda") else "gloo")


def _look_up_data(network: str, mirror: Optional[bool], needs_data: list, verbose: bool) -> tuple[str, bool]:
    """--data left out: the network's training data, as calc_metrics.py does ('look up'); an
    explicit --mirror wins over the recorded x-flip. No record: the usage error asks for --data."""
    found = training_data(network)
    if found is None:
        raise click.UsageError(f"{', '.join(needs_data)} need real images: pass --data ({network} records no "
                               f"training dataset to look up).")
    if verbose:
        click.echo(f"--data {found.path} (looked up in {found.source}), x-flip "
                   f"{found.mirror if mirror is None else mirror}", err=True)
    return found.path, found.mirror if mirror is None else mirror


__all__ = ["MetricsJob", "TrainingData", "command", "load_network", "open_data", "run_job", "training_data"]
