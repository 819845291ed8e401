"""Transfer learning (the ADA paper's fine-tuning workflow): --freezed as stylegan2-ada-pytorch,
--glr / --dlr, and --resume of networks written by other code (an official-format pickle)."""
import pytest
import torch

from stylegan.training.launch import train
from stylegan.training.stepper import frozen_layers

from test_training_helpers import make_dataset, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return str(make_dataset(tmp_path_factory.mktemp("transfer") / "discs", n=48))


@pytest.mark.parametrize("arch, n, expected", [
    ("resnet", 5, ("b32.fromrgb", "b32.conv0", "b32.conv1", "b32.skip", "b16.conv0")),
    ("skip", 4, ("b32.fromrgb", "b32.conv0", "b32.conv1", "b16.fromrgb")),
    ("orig", 4, ("b32.fromrgb", "b32.conv0", "b32.conv1", "b16.conv0")),
    ("resnet", 0, ()),
])
def test_frozen_layers_count_like_the_official_freeze_d(arch, n, expected):
    """stylegan2-ada-pytorch counts from the input: per block fromrgb (where present), conv0, conv1, skip."""
    from stylegan.models import DiscriminatorConfig, build_discriminator

    D = build_discriminator(DiscriminatorConfig(img_resolution=32, img_channels=1, channel_base=128, channel_max=16,
                                                architecture=arch))
    assert frozen_layers(D, n) == expected
    assert "b4" not in "".join(frozen_layers(D, 100))  # the epilogue never freezes


def _d_before_after(cfg, data, steps=4):
    from stylegan.data.dataset import open_dataset
    from stylegan.data.stream import DataStream
    from stylegan.training.stepper import Stepper

    stepper = Stepper(cfg, DataStream(open_dataset(data), cfg.seed, workers=0), device="cpu")
    before = {k: v.clone() for k, v in stepper.D.named_parameters()}
    for _ in range(steps):  # Dmain every step, Dreg (R1) every 2
        stepper.step()
    return before, dict(stepper.D.named_parameters())


@pytest.mark.parametrize("freezed", [0, 3])
def test_freezed_layers_stay_bit_identical_and_the_rest_moves(data, freezed):
    before, after = _d_before_after(tiny_config().replace(freezed=freezed), data)
    frozen = [k for k in before if k.startswith(("b32.fromrgb.", "b32.conv0.", "b32.conv1."))]
    assert len(frozen) == 6  # weight and bias of three layers
    for k in before:
        same = torch.equal(before[k], after[k])
        assert same == (freezed > 0 and k in frozen), f"{k}: {'unchanged' if same else 'moved'}"


def _rgb_dataset(root, n=16, labels=False):
    import json

    import numpy as np
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rnd = np.random.RandomState(1)
    for i in range(n):
        Image.fromarray(rnd.randint(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / f"{i:03d}.png")
    if labels:
        (root / "dataset.json").write_text(json.dumps({"labels": [[f"{i:03d}.png", i % 3] for i in range(n)]}))
    return str(root)


@pytest.fixture(scope="module")
def official_pkl(tmp_path_factory):
    """A pickle as NVIDIA's training loop writes it, of the network whose outputs NVIDIA's code computed."""
    from test_official import write_fake_snapshot

    path, _, _ = write_fake_snapshot(tmp_path_factory.mktemp("official"))
    return str(path)


def _trainer(opts, preset="tiny"):
    from stylegan.training.launch import make_run_dir, prepare
    from stylegan.training.loop import Trainer

    plan = prepare(opts, preset=preset)
    return plan, Trainer(plan, 0, "cpu", run_dir=make_run_dir(plan.opts))


def test_fine_tune_from_an_official_pickle(tmp_path, official_pkl):
    import stylegan
    from stylegan.training.plan import RunOptions

    data = _rgb_dataset(tmp_path / "rgb")
    opts = RunOptions(data=data, outdir=str(tmp_path / "runs"), resume=official_pkl, device="cpu", quiet=True,
                      threads=1)
    plan, trainer = _trainer(opts)
    assert (plan.cfg.G.channel_base, plan.cfg.G.architecture, plan.cfg.D.architecture) == (1024, "skip", "resnet")
    assert plan.cfg.batch == 8 and plan.cfg.loss.r1_gamma == 1.0  # the tiny preset's settings
    assert any("fine-tuning from" in n for n in plan.notes)
    # As the official --resume starts a fine-tune: ADA 5x faster, no G_ema ramp-up.
    assert (plan.cfg.augment.speed_kimg, plan.cfg.ema_rampup) == (100, None)
    assert any("ADA speed 100 kimg, no G_ema ramp-up" in n for n in plan.notes)
    official = {n: stylegan.load(official_pkl, which=n).state_dict() for n in ("G", "G_ema", "D")}
    for name in ("G", "G_ema", "D"):  # every weight and buffer is the file's
        ours = trainer.stepper.networks[name].state_dict()
        assert ours.keys() == official[name].keys()
        assert all(torch.equal(ours[k], official[name][k]) for k in ours), name
    assert trainer.state.cur_nimg == 0  # fresh optimizers and counters
    result = trainer.run()
    assert result.state.batch_idx > 0
    tuned = stylegan.load(result.last_snapshot, which="G").state_dict()
    moved = [k for k in tuned if not torch.equal(tuned[k], official["G"][k])]
    assert moved and all(torch.isfinite(v).all() for v in tuned.values())


def test_fine_tune_shape_and_label_mismatches_are_clear(tmp_path, official_pkl):
    from stylegan.training.errors import TrainingSetupError
    from stylegan.training.plan import RunOptions

    gray = str(make_dataset(tmp_path / "gray", n=8))
    opts = RunOptions(data=gray, resume=official_pkl, device="cpu", write_files=False)
    with pytest.raises(TrainingSetupError, match=r"make 32x32x3 images, the dataset is 32x32x1"):
        _trainer(opts)
    labelled = _rgb_dataset(tmp_path / "lab", labels=True)
    import dataclasses

    from stylegan.training.plan import Overrides, plan_run

    cond = Overrides(cond=True)
    with pytest.raises(TrainingSetupError, match="--fresh-labels"):
        plan_run(dataclasses.replace(opts, data=labelled), preset="tiny", overrides=cond)
    plan = plan_run(dataclasses.replace(opts, data=labelled, fresh_labels=True), preset="tiny", overrides=cond)
    assert plan.cfg.G.c_dim == plan.cfg.D.c_dim == 3 and plan.cfg.G.channel_base == 1024
    # Options that would reshape the file's networks are refused by name, not failed on at load.
    for shaping, flags in ((Overrides(cbase=2048), "--cbase"), (Overrides(cmax=64, map_layers=4), "--map, --cmax"),
                           (Overrides(g_arch="orig"), "--g-arch")):
        with pytest.raises(TrainingSetupError, match=f"^{flags} with --resume: the networks' shapes come from"):
            plan_run(dataclasses.replace(opts, data=labelled), preset="tiny", overrides=shaping)


def test_fresh_labels_keep_every_other_weight(tmp_path, official_pkl):
    import stylegan
    from stylegan.training.loop import Trainer
    from stylegan.training.plan import Overrides, RunOptions, plan_run

    opts = RunOptions(data=_rgb_dataset(tmp_path / "lab", labels=True), resume=official_pkl, device="cpu",
                      write_files=False, fresh_labels=True)
    trainer = Trainer(plan_run(opts, preset="tiny", overrides=Overrides(cond=True)), 0, "cpu")
    ours, theirs = trainer.stepper.G_ema.state_dict(), stylegan.load(official_pkl).state_dict()
    kept = [k for k in ours if k in theirs and ours[k].shape == theirs[k].shape]
    assert all(torch.equal(ours[k], theirs[k]) for k in kept)
    assert "mapping.embed.weight" in ours and "mapping.embed.weight" not in theirs  # the fresh label pathway
    assert {k for k in ours if k not in kept} <= {"mapping.embed.weight", "mapping.embed.bias", "mapping.fc0.weight"}


def test_fine_tuning_a_stylegan3_r_turns_the_d_blur_off_as_officially():
    """stylegan3's train.py sets blur_init_sigma 0 (and ada_kimg 100, no ema ramp-up) on --resume:
    the file's D was trained on sharp images, so a fine-tune does not blur them again."""
    import dataclasses

    from stylegan.training.presets import DataShape, resolve_preset
    from stylegan.training.transfer import ForeignNetworks, transfer_config

    cfg = resolve_preset("stylegan3-r", DataShape(64, 3))
    assert cfg.loss.blur_init_sigma == 10
    file = ForeignNetworks("r.pkl", cfg.G, cfg.D, ("D", "G", "G_ema"))
    tuned, notes = transfer_config(cfg, file, resolution=64, channels=3, label_dim=0, cond=False, fresh_labels=False)
    assert (tuned.loss.blur_init_sigma, tuned.augment.speed_kimg, tuned.ema_rampup) == (0, 100, None)
    assert tuned.G == cfg.G and tuned.D == cfg.D and tuned.loss.r1_gamma == cfg.loss.r1_gamma
    # The magnitude EMA's beta is this run's (stylegan3's train.py derives it from --batch), not the file's.
    filed = ForeignNetworks("r.pkl", cfg.G.replace(v3=dataclasses.replace(cfg.G.v3, magnitude_ema_beta=0.999)),
                            cfg.D, ("G",))
    tuned, _ = transfer_config(cfg, filed, resolution=64, channels=3, label_dim=0, cond=False, fresh_labels=False)
    assert tuned.G.v3.magnitude_ema_beta == cfg.G.v3.magnitude_ema_beta == 0.5 ** (32 / 20e3)
    assert any("ADA speed 100 kimg, no G_ema ramp-up, no D input blur" in n for n in notes)
