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
