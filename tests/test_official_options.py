"""NVIDIA's command-line options against ours: the table in docs/official.md ("The official tools'
options, and ours") cannot drift from the commands, and the official command lines that rely on
those options run.

`OFFICIAL` lists every option of the official scripts, read from their click declarations
(stylegan2-ada-pytorch and stylegan3 at their last commits); it is written out here so that the test
runs offline. The table must have a row for each, the options it names as ours must be options of
the command (click's `command.params`), an official name we accept must be named, a row without an
option of ours must say why, and the "takes BOOL" / "flag only" notes must match what the command
does with the official `--option=1`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import stylegan
from stylegan import Generator, GeneratorConfig, MappingConfig
from stylegan.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "official.md"
SECTION = "## The official tools' options, and ours"

# {subcommand: {repo: options}}; ada = stylegan2-ada-pytorch, sg3 = stylegan3.
OFFICIAL = {
    "train": {
        "ada": "--outdir --gpus --snap --metrics --seed -n --dry-run --data --cond --subset --mirror --cfg --gamma "
               "--kimg --batch --aug --p --target --augpipe --resume --freezed --fp32 --nhwc --nobench "
               "--allow-tf32 --workers",
        "sg3": "--outdir --cfg --data --gpus --batch --gamma --cond --mirror --aug --resume --freezed --p --target "
               "--batch-gpu --cbase --cmax --glr --dlr --map-depth --mbstd-group --desc --metrics --kimg --tick "
               "--snap --seed --fp32 --nobench --workers -n --dry-run",
    },
    "dataset": {  # dataset_tool.py
        "ada": "--source --dest --max-images --resize-filter --transform --width --height",
        "sg3": "--source --dest --max-images --transform --resolution",
    },
    "generate": {  # generate.py (ada), gen_images.py (sg3)
        "ada": "--network --seeds --trunc --class --noise-mode --projected-w --outdir",
        "sg3": "--network --seeds --trunc --class --noise-mode --translate --rotate --outdir",
    },
    "mix": {"ada": "--network --rows --cols --styles --trunc --noise-mode --outdir"},  # style_mixing.py
    "project": {"ada": "--network --target --num-steps --seed --save-video --outdir"},  # projector.py
    "metrics": {  # calc_metrics.py
        "ada": "--network --metrics --data --mirror --gpus --verbose",
        "sg3": "--network --metrics --data --mirror --gpus --verbose",
    },
    "video": {"sg3": "--network --seeds --shuffle-seed --grid --num-keyframes --w-frames --trunc --output"},
}
REPOS = {"ada": ("ada",), "sg3": ("sg3",), "both": ("ada", "sg3")}


@dataclass(frozen=True)
class Row:
    command: str
    line: int
    official: tuple[str, ...]  # option names in the official column
    bool_value: bool  # the official option takes a BOOL value
    repos: tuple[str, ...]
    ours: tuple[str, ...]  # option names in the ours column
    notes: str


def table_rows() -> list[Row]:
    """The rows of every table in the section, with the subcommand its heading names."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(SECTION)
    rows, command = [], None
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if line.startswith("## "):
            break
        heading = re.match(r"^### .*`stylegan ([\w-]+)`", line)
        if heading:
            command = heading.group(1)
            continue
        if not line.startswith("|") or re.match(r"^\|[-| ]+\|$", line) or line.startswith("| official "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 4, f"docs/official.md:{i + 1}: expected | official | in | ours | notes |"
        official, repos, ours, notes = cells
        assert command is not None and repos in REPOS, f"docs/official.md:{i + 1}: {line}"
        rows.append(Row(command, i + 1, tuple(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", official)),
                        "BOOL" in official.split(), REPOS[repos],
                        tuple(re.findall(r"`(--[\w-]+)`", ours)), notes))
    return rows


ROWS = table_rows()


def command_of(name: str) -> click.Command:
    cmd = main.get_command(click.Context(main, info_name="stylegan"), name)
    assert cmd is not None, f"no subcommand {name}"
    return cmd


def options_of(name: str) -> set[str]:
    return {o for p in command_of(name).params for o in (*p.opts, *p.secondary_opts)}


def parses(name: str, args: list[str]) -> bool:
    """Whether the command's own click parser takes `args` (no callback runs)."""
    cmd = command_of(name)
    ctx = click.Context(cmd, info_name=name, **cmd.context_settings)  # as make_context, without running
    try:
        cmd.make_parser(ctx).parse_args(list(args))
    except click.UsageError:
        return False
    return True


def where(row: Row) -> str:
    return f"docs/official.md:{row.line} (stylegan {row.command})"


def test_the_table_is_found():
    assert len(ROWS) > 60 and {r.command for r in ROWS} == set(OFFICIAL)


def test_every_official_option_has_one_row():
    for command, repos in OFFICIAL.items():
        want = {(opt, repo) for repo, opts in repos.items() for opt in opts.split()}
        have = [(opt, repo) for r in ROWS if r.command == command for opt in r.official for repo in r.repos]
        assert sorted(set(have)) == sorted(want), f"stylegan {command}: table vs official options"
        assert len(have) == len(set(have)), f"stylegan {command}: an official option has two rows"


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.command}:{r.official[-1]}")
def test_ours_are_options_of_the_command(row):
    known = options_of(row.command)
    named_in_notes = re.findall(r"`(--[\w-]+)", row.notes)
    for opt in (*row.ours, *named_in_notes):
        assert opt in known, f"{where(row)}: stylegan {row.command} has no option {opt}"
    if not row.ours:
        assert len(row.notes) > 20, f"{where(row)}: no option of ours, and no reason given"
    for opt in row.official:  # an official name we accept must be named as ours
        if opt.startswith("--") and opt in known:
            assert opt in row.ours, f"{where(row)}: stylegan {row.command} accepts {opt}: name it as ours"


@pytest.mark.parametrize("row", [r for r in ROWS if r.bool_value and r.ours], ids=lambda r: r.ours[0])
def test_bool_notes_say_what_the_command_does(row):
    takes = parses(row.command, [f"{row.ours[0]}=1"])
    assert parses(row.command, [row.ours[0]]), f"{where(row)}: {row.ours[0]} alone must be a flag"
    if takes:
        assert "takes BOOL" in row.notes, f"{where(row)}: {row.ours[0]}=1 works: say 'takes BOOL'"
    else:
        assert "flag only" in row.notes, f"{where(row)}: {row.ours[0]}=1 is refused: say 'flag only'"


def test_underscore_spellings_of_the_readmes():
    """--projected_w and --max_images (printed by the official READMEs) read as dashes."""
    assert parses("generate", ["--projected_w=out/projected_w.npz", "--outdir=out"])
    assert parses("dataset", ["--max_images=200000", "--transform=center-crop-wide"])
    assert parses("video", ["--w_frames=3", "--num_keyframes=2"])
    assert not parses("generate", ["--no_such_option=1"])


# ------------------------------------------------------------------- the options, end to end

R = 16


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=16, w_dim=16, img_resolution=R, channel_base=256, channel_max=32,
                                  mapping=MappingConfig(num_layers=2))).eval().requires_grad_(False)
    path = tmp_path_factory.mktemp("net") / "tiny.safetensors"
    stylegan.save_checkpoint(path, {"G_ema": G})
    return path


def test_generate_and_mix_take_official_lines(network, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["generate", f"--outdir={out}", "--trunc=1", "--seeds=0-1,3", f"--network={network}",
                                    "--noise-mode=const", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["seed0000.png", "seed0001.png", "seed0003.png"]
    w = tmp_path / "projected_w.npz"
    np.savez(w, w=np.zeros((1, 6, 16), np.float32))  # 16 px: 6 style inputs of w_dim 16
    res = CliRunner().invoke(main, ["generate", f"--outdir={out}", f"--projected_w={w}", f"--network={network}",
                                    "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert (out / "proj00.png").is_file()
    res = CliRunner().invoke(main, ["mix", f"--outdir={out}", "--rows=1,2", "--cols=3,4,5", "--styles=0-2",
                                    f"--network={network}", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert np.asarray(Image.open(out / "grid.png")).shape == (3 * R, 4 * R, 3)


# -- calc_metrics.py: --mirror BOOL, --verbose BOOL, --data / --mirror looked up, --metrics none

@pytest.fixture
def jobs(monkeypatch):
    """The metrics command up to the job it would run (the metrics themselves are tested elsewhere)."""
    import stylegan.cli.metrics as cli

    ran = []
    monkeypatch.setattr(cli, "run_job", lambda job, *a: ran.append(job))
    return ran


def snapshot_with(tmp_path: Path, network: Path, info: dict) -> Path:
    from stylegan.io.checkpoint import read_checkpoint

    path = tmp_path / "snapshot-000000200.safetensors"
    stylegan.save_checkpoint(path, {"G_ema": read_checkpoint(network).build("G_ema")}, info=info)
    return path


def test_metrics_looks_up_the_training_data(network, tmp_path, jobs):
    snap = snapshot_with(tmp_path, network, {"run": {"data": "runs-data.zip"}, "training": {"mirror": True}})
    res = CliRunner().invoke(main, ["metrics", "--metrics=fid1k_full,pr1k3_full", f"--network={snap}",
                                    "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "--data runs-data.zip (looked up in snapshot-000000200.safetensors" in res.output
    assert (jobs[-1].data, jobs[-1].mirror, jobs[-1].progress) == ("runs-data.zip", True, True)
    res = CliRunner().invoke(main, ["metrics", "--metrics=fid1k_full", f"--network={snap}", "--mirror=0",
                                    "--verbose=false", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "looked up" not in res.output  # --verbose=false: quiet
    assert (jobs[-1].data, jobs[-1].mirror, jobs[-1].progress) == ("runs-data.zip", False, False)
    res = CliRunner().invoke(main, ["metrics", "--metrics=fid1k_full", f"--network={snap}", "--data=other.zip",
                                    "--device", "cpu"])
    assert (jobs[-1].data, jobs[-1].mirror) == ("other.zip", False)  # explicit --data: no x-flip unless asked
    res = CliRunner().invoke(main, ["metrics", "--metrics=fid1k_full", f"--network={network}", "--device", "cpu"])
    assert res.exit_code == 2 and "records no training dataset" in res.output and "--data" in res.output
    res = CliRunner().invoke(main, ["metrics", "--metrics=none", f"--network={network}"])
    assert res.exit_code == 0 and "nothing to compute" in res.output


def test_metrics_looks_up_an_official_pickles_training_set_kwargs(tmp_path, jobs):
    from official_fixture import FIXTURE

    if not FIXTURE.is_file():
        pytest.skip("NVIDIA's fixture is not installed")
    from test_official import write_fake_snapshot

    path, _, _ = write_fake_snapshot(tmp_path)  # training_set_kwargs: path data/x.zip, xflip True
    res = CliRunner().invoke(main, ["metrics", "--metrics=kid1k_full", f"--network={path}", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert (jobs[-1].data, jobs[-1].mirror) == ("data/x.zip", True)
    assert "training_set_kwargs" in res.output


# -- dataset_tool.py: --width / --height, --resolution WxH, a folder --dest

def images(folder: Path, size: tuple[int, int], n: int = 3) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def dataset(args: list[str]) -> click.testing.Result:
    return CliRunner().invoke(main, ["dataset", *args])


def read_zip(path: Path) -> list[np.ndarray]:
    import zipfile

    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".png"))
        return [np.asarray(Image.open(zf.open(n))) for n in names]


@pytest.mark.parametrize("size_args", [["--width=8", "--height=8"], ["--resolution=8x8"], ["--resolution=8"],
                                       ["--width=8"]])
def test_dataset_sizes_of_both_official_tools(tmp_path, size_args):
    src = images(tmp_path / "src", (24, 16))
    res = dataset([f"--source={src}", f"--dest={tmp_path / 'd.zip'}", "--transform=center-crop", *size_args])
    assert res.exit_code == 0, res.output
    assert [a.shape for a in read_zip(tmp_path / "d.zip")] == [(8, 8, 3)] * 3


def test_dataset_center_crop_wide_band(tmp_path):
    """LSUN Car's official line: --transform=center-crop-wide --width=512 --height=384, smaller: a 4:3
    source is the band itself, resized to 16 x 12 and letterboxed on 16 x 16."""
    src = images(tmp_path / "src", (32, 24), n=1)
    res = dataset([f"--source={src}", f"--dest={tmp_path / 'car.zip'}", "--transform=center-crop-wide",
                   "--width=16", "--height=12", "--max_images=1"])
    assert res.exit_code == 0, res.output
    (out,) = read_zip(tmp_path / "car.zip")
    band = np.asarray(Image.open(src / "0.png").resize((16, 12), Image.Resampling.LANCZOS))
    assert np.array_equal(out[2:14], band) and not out[:2].any() and not out[14:].any()
    res = dataset([f"--source={src}", f"--dest={tmp_path / 'x.zip'}", "--width=16", "--height=12"])
    assert res.exit_code == 2 and "center-crop-wide" in res.output  # non-square output
    res = dataset([f"--source={src}", f"--dest={tmp_path / 'x.zip'}", "--resolution=16", "--width=16"])
    assert res.exit_code == 2 and "not both" in res.output
    res = dataset([f"--source={src}", f"--dest={tmp_path / 'x.zip'}", "--resolution=16y16"])
    assert res.exit_code == 2 and "WxH" in res.output


def test_dataset_writes_a_folder_dest(tmp_path):
    src = images(tmp_path / "src", (8, 8))
    dest = tmp_path / "datasets" / "mine"
    res = dataset([f"--source={src}", f"--dest={dest}"])
    assert res.exit_code == 0, res.output
    assert f"to {dest} " in res.output
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "00000/img00000000.png", "00000/img00000001.png", "00000/img00000002.png", "dataset.json"]
    assert json.loads((dest / "dataset.json").read_text()) == {"labels": None}
    assert len(stylegan.data.open_dataset(str(dest))) == 3  # our loader reads it, as the official one does
    res = dataset([f"--source={src}", f"--dest={dest}"])
    assert res.exit_code == 1 and "must be empty" in res.output
    res = dataset([f"--source={src}", f"--dest={dest}", "--force", "--max-images=1"])
    assert res.exit_code == 0 and len(list(dest.rglob("*.png"))) == 1
    res = dataset([f"--source={tmp_path / 'missing'}", f"--dest={tmp_path / 'other'}"])
    assert res.exit_code == 1 and not (tmp_path / "other").exists()  # nothing half-written
    assert not [p for p in (tmp_path / "datasets").iterdir() if p.name.startswith(".")]
