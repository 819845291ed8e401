"""`stylegan train`: --dry-run JSON, option handling, clear errors, a short run and --resume."""
import json

import pytest
from click.testing import CliRunner

from stylegan.cli import main

from test_training_helpers import make_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return str(make_dataset(tmp_path_factory.mktemp("cli") / "discs", labels=True))


def _run(*args):
    return CliRunner().invoke(main, ["train", *args], catch_exceptions=False)


def test_dry_run_prints_resolved_config(data):
    r = _run("--data", data, "--cfg", "cpu", "--dry-run", "--batch", "12", "--gamma", "0.5", "--kimg", "3",
             "--mirror", "--map", "1", "--lr", "0.001", "--ema", "2", "--kimg-per-tick", "0.5", "--snap", "7",
             "--seed", "5", "--g-arch", "orig", "--d-arch", "skip")
    assert r.exit_code == 0, r.output
    cfg = json.loads(r.output)["training"]
    assert cfg["preset"] == "cpu"
    assert (cfg["batch"], cfg["total_kimg"], cfg["snap"], cfg["seed"], cfg["kimg_per_tick"]) == (12, 3.0, 7, 5, 0.5)
    assert cfg["mirror"] is True and cfg["cond"] is False
    assert cfg["loss"]["r1_gamma"] == 0.5 and cfg["ema_kimg"] == 2.0
    assert cfg["G_opt"]["lr"] == cfg["D_opt"]["lr"] == 0.001
    assert cfg["G"]["mapping"]["num_layers"] == 1
    assert (cfg["G"]["architecture"], cfg["D"]["architecture"]) == ("orig", "skip")
    assert cfg["D"]["mbstd_group_size"] == 4  # divides the micro-batch 12
    assert cfg["augment"]["mode"] == "ada"  # the official default
    assert cfg["precision"] is None  # the networks as constructed
    r = _run("--data", data, "--cfg", "cpu", "--dry-run", "--precision", "bf16")
    assert json.loads(r.output)["training"]["precision"] == {"dtype": "bf16", "num_low_res": 4, "conv_clamp": 256.0}


def test_dry_run_fits_mbstd_and_options(data):
    r = _run("--data", data, "--cfg", "cpu", "--dry-run", "--batch", "6", "--aug", "fixed", "--p", "0.3",
             "--augpipe", "bg", "--cond", "--no-mirror", "--metrics", "none")
    assert r.exit_code == 0, r.output
    cfg = json.loads(r.output)["training"]
    assert cfg["D"]["mbstd_group_size"] == 3
    assert cfg["augment"] == {**cfg["augment"], "mode": "fixed", "p": 0.3, "pipe": "bg"}
    assert cfg["cond"] is True and cfg["G"]["c_dim"] == 3 and cfg["D"]["c_dim"] == 3
    assert cfg["metrics"] == []


@pytest.mark.parametrize("args, message", [
    (["--data", "/no/such/data.zip"], "cannot open --data"),
    (["--cfg", "nope"], "unknown --cfg"),
    (["--batch", "8", "--batch-gpu", "3"], "--batch-gpu"),
    (["--gpus", "3", "--batch", "8"], "not divisible"),
    (["--aug", "fixed"], "--p"),
    (["--metrics", "fid_nonsense"], "Unknown metric"),
    (["--augpipe", "xyz"], "augment pipeline"),
    (["--cfg", "sg1-F", "--g-arch", "skip"], "orig"),
    (["--cfg", "sg1-F", "--precision", "bf16"], "StyleGAN2 networks only"),
])
def test_clear_errors(data, args, message):
    full = ["--cfg", "tiny", "--data", data, "--dry-run"]
    for i in range(0, len(args), 2):  # later options replace earlier ones
        if args[i] in full:
            j = full.index(args[i])
            full[j + 1] = args[i + 1]
        else:
            full += args[i:i + 2]
    r = CliRunner().invoke(main, ["train", *full])
    assert r.exit_code != 0
    assert message in r.output, r.output


def test_no_data_is_a_usage_error():
    r = CliRunner().invoke(main, ["train", "--cfg", "tiny"])
    assert r.exit_code == 2 and "--data" in r.output


def test_cli_trains_and_resumes(tmp_path, data, one_thread):
    out = tmp_path / "runs"
    r = _run("--data", data, "--cfg", "tiny", "--outdir", str(out), "--kimg", "0.016", "--aug", "noaug",
             "--device", "cpu", "--kimg-per-tick", "0.008")
    assert r.exit_code == 0, r.output
    run = next(out.iterdir())
    assert run.name == "00000-discs-tiny-kimg0.016"
    assert "tick 0" in r.output and "run directory" in r.output
    assert "runtime: fast paths upfirdn2d,demod,bias_act" in r.output  # the switches, in the run log
    # --resume with a run directory: newest snapshot, config and data from the snapshot.
    r = _run("--resume", str(run), "--dry-run", "--kimg", "0.032")
    assert r.exit_code == 0, r.output
    cfg = json.loads(r.output)["training"]
    assert cfg["total_kimg"] == 0.032 and cfg["augment"]["mode"] == "noaug" and cfg["preset"] == "tiny"
    r = _run("--resume", str(run), "--kimg", "0.032", "--outdir", str(out))
    assert r.exit_code == 0, r.output
    assert "resumed training state" in r.output
    run2 = sorted(out.iterdir())[-1]
    assert run2.name.startswith("00001-discs-tiny") and run2.name.endswith("resume")
    stats = [json.loads(x) for x in (run2 / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["Progress/kimg"]["mean"] == pytest.approx(0.032)
