"""Training options are declared once (training.options): every command-line option reaches the
run record (`--dry-run`, config.json) where its declaration says, the Python API takes the same
names, and a new option cannot be added without a case here."""
import dataclasses
import json

import pytest
from click.testing import CliRunner

from stylegan.cli import main
from stylegan.training.launch import train
from stylegan.training.options import declared, get_path
from stylegan.training.plan import Overrides, RunOptions

from test_training_helpers import make_dataset, tiny_config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return str(make_dataset(tmp_path_factory.mktemp("opts") / "discs", labels=True))


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory, data):
    res = train(tiny_config(total_kimg=0.008, ticks_kimg=0.008), data, str(tmp_path_factory.mktemp("runs")),
                device="cpu", quiet=True, threads=1)
    return str(res.last_snapshot)


# flag -> (arguments, {record path: expected value}); each expected value must differ from the
# record without the arguments, so the case shows the option changed something.
CASES = {
    "--data": (["--data", "{other}"], {"run.data": "{other}"}),
    "--outdir": (["--outdir", "elsewhere"], {"run.outdir": "elsewhere"}),
    "--desc": (["--desc", "mine"], {"run.desc": "mine"}),
    "--run-dir": (["--run-dir", "fixed"], {"run.run_dir": "fixed"}),
    "--device": (["--device", "cpu"], {"run.device": "cpu"}),
    "--gpus": (["--gpus", "2"], {"run.gpus": 2, "run.world_size": 2}),
    "--resume": (["--resume", "{snapshot}"], {"run.resume": "{snapshot}"}),
    "--workers": (["--workers", "0"], {"run.workers": 0}),
    "--nan-ticks": (["--nan-ticks", "5"], {"run.nan_ticks": 5}),
    "--threads": (["--threads", "1"], {"run.threads": 1}),
    "--max-minutes": (["--max-minutes", "2.5"], {"run.max_minutes": 2.5}),
    "--retain-malloc": (["--no-retain-malloc"], {"run.retain_malloc": False}),
    "--compile": (["--compile"], {"run.compile": True}),
    "--batch": (["--batch", "16"], {"training.batch": 16}),
    "--batch-gpu": (["--batch-gpu", "4"], {"training.batch_gpu": 4}),
    "--gamma": (["--gamma", "0.25"], {"training.loss.r1_gamma": 0.25}),
    "--kimg": (["--kimg", "2"], {"training.total_kimg": 2.0}),
    "--snap": (["--snap", "9"], {"training.snap": 9}),
    "--mirror": (["--mirror"], {"training.mirror": True}),
    "--cond": (["--cond"], {"training.cond": True, "training.G.c_dim": 3}),
    "--seed": (["--seed", "7"], {"training.seed": 7}),
    "--metrics": (["--metrics", "fid50k_full"], {"training.metrics": ["fid50k_full"]}),
    "--aug": (["--aug", "fixed", "--p", "0.3"], {"training.augment.mode": "fixed"}),
    "--p": (["--p", "0.3"], {"training.augment.p": 0.3}),
    "--target": (["--target", "0.7"], {"training.augment.target": 0.7}),
    "--augpipe": (["--augpipe", "bg"], {"training.augment.pipe": "bg"}),
    "--g-arch": (["--g-arch", "resnet"], {"training.G.architecture": "resnet"}),
    "--d-arch": (["--d-arch", "orig"], {"training.D.architecture": "orig"}),
    "--map": (["--map", "1"], {"training.G.mapping.num_layers": 1}),
    "--lr": (["--lr", "0.001"], {"training.G_opt.lr": 0.001, "training.D_opt.lr": 0.001}),
    "--ema": (["--ema", "3"], {"training.ema_kimg": 3.0}),
    "--kimg-per-tick": (["--kimg-per-tick", "0.5"], {"training.kimg_per_tick": 0.5}),
    "--precision": (["--precision", "bf16"], {"training.precision.dtype": "bf16"}),
    "--fp32": (["--fp32"], {"training.precision.dtype": "fp32"}),
    "--glr": (["--glr", "0.004"], {"training.G_opt.lr": 0.004}),
    "--dlr": (["--dlr", "0.004"], {"training.D_opt.lr": 0.004}),
    "--cbase": (["--cbase", "512"], {"training.G.channel_base": 512, "training.D.channel_base": 512}),
    "--cmax": (["--cmax", "64"], {"training.G.channel_max": 64, "training.D.channel_max": 64}),
    "--mbstd-group": (["--mbstd-group", "2"], {"training.D.mbstd_group_size": 2}),
    "--freezed": (["--freezed", "2"], {"training.freezed": 2}),
    "--subset": (["--subset", "20"], {"training.subset": 20}),
    "--fresh-labels": (["--fresh-labels"], {"run.fresh_labels": True}),
    "--tensorboard": (["--no-tensorboard"], {"run.tensorboard": False}),
    "--nobench": (["--nobench"], {"run.nobench": True}),
    "--allow-tf32": (["--allow-tf32"], {"run.allow_tf32": True}),
}


def _record(*args):
    r = CliRunner().invoke(main, ["train", "--cfg", "tiny", *args, "--dry-run"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def _at(record, path):
    for part in path.split("."):
        record = None if record is None else record.get(part)
    return record


def test_official_spellings_are_aliases(data):
    """stylegan3's --tick and --map-depth name the same options as --kimg-per-tick and --map."""
    assert _record("--data", data, "--tick", "0.5")["training"]["kimg_per_tick"] == 0.5
    assert _record("--data", data, "--map-depth", "1")["training"]["G"]["mapping"]["num_layers"] == 1


def test_every_command_line_option_has_a_case():
    flags = {d.flag for cls in (RunOptions, Overrides) for d in declared(cls) if d.flag is not None}
    assert flags == set(CASES)


@pytest.mark.parametrize("flag", sorted(CASES))
def test_every_command_line_option_reaches_the_record(flag, data, snapshot, tmp_path):
    other = str(make_dataset(tmp_path / "other", n=8))
    fill = {"{other}": other, "{snapshot}": snapshot}
    args, expected = CASES[flag]
    args = [fill.get(a, a) for a in args]
    base = _record("--data", data)
    rec = _record("--data", data, *args)
    for path, value in expected.items():
        value = fill.get(value, value) if isinstance(value, str) else value
        assert _at(base, path) != value, f"{flag}: {path} is {value!r} without the option too"
        assert _at(rec, path) == value, f"{flag}: {path} is {_at(rec, path)!r}, expected {value!r}"


def test_declared_config_paths_exist_and_are_what_cases_check():
    """Every `to` path names a TrainingConfig field, and its case checks exactly that path."""
    cfg = tiny_config()
    for d in declared(Overrides):
        for path in d.option.to:
            get_path(cfg, path)  # AttributeError names a stale path
            assert f"training.{path}" in CASES[d.flag][1], f"{d.flag} sets {path}: its case must check it"
        assert d.option.to or d.option.rule, f"{d.flag}: neither a config path nor a rule"


def test_python_api_takes_the_declared_names(data, tmp_path):
    names = {f.name for f in dataclasses.fields(RunOptions)}
    assert {"nan_ticks", "max_minutes", "gpus", "resume"} <= names
    with pytest.raises(TypeError, match="max_bad_ticks"):
        train(tiny_config(), data, str(tmp_path), max_bad_ticks=3)


def test_config_json_is_the_dry_run_record(data, snapshot, tmp_path):
    """The run directory's config.json holds the --dry-run record plus what the run found out."""
    out = tmp_path / "runs"
    args = ["--data", data, "--kimg", "0.008", "--kimg-per-tick", "0.008", "--nan-ticks", "4", "--outdir", str(out),
            "--device", "cpu", "--threads", "1", "--aug", "noaug"]
    dry = _record(*args)
    r = CliRunner().invoke(main, ["train", "--cfg", "tiny", *args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    saved = json.loads(next(out.glob("*/config.json")).read_text())
    assert saved["training"] == dry["training"]
    assert {k: v for k, v in saved["run"].items() if k in dry["run"]} == dry["run"]
    assert saved["run"]["nan_ticks"] == 4 and saved["run"]["dataset_size"] == 48


def test_docs_options_table_lists_exactly_the_declared_options():
    """docs/training.md's options table cannot drift from the declarations."""
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "training.md").read_text()
    table = text.split("## Options", 1)[1].split("\n\n", 3)
    rows = [line for part in table for line in part.splitlines() if line.startswith("| `--")]
    in_docs = {m for row in rows for m in re.findall(r"`(--[a-z0-9-]+)", row.split("|")[1])}
    in_docs = {f for f in in_docs if not f.startswith("--no-")}
    options = [d for cls in (RunOptions, Overrides) for d in declared(cls) if d.flag is not None]
    aliases = {f"--{a}" for d in options for a in d.option.aliases}
    assert in_docs - {"--cfg", "--dry-run"} == {d.flag for d in options} | aliases
