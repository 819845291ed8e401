"""The official StyleGAN2 reference fixture for the tests, and the marker of the tests that use it.

The fixture (tensors computed by NVIDIA's code) is package data of `stylegan.selftest`
(src/stylegan/selftest/data, provenance in its README), so it is present in every checkout and
installation: the parity tests always run. `needs_fixture` marks them, so `pytest -m
official_fixture` selects exactly the tests that compare against NVIDIA's numbers.
"""
import pytest

from stylegan.selftest.fixture import FIXTURE

needs_fixture = pytest.mark.official_fixture


def load_fixture_networks():
    """(arrays, meta, G, D): our networks built at the fixture's config, loaded with its weights by
    plain state-dict keys (only the noise buffers are renamed) -- independent of the official-import
    mapping that tests/test_official.py and the selftest go through."""
    import json

    import numpy as np
    import torch

    from stylegan.models import DiscriminatorConfig, Generator, GeneratorConfig, MappingConfig, build_discriminator

    data = np.load(FIXTURE)
    meta = json.loads(FIXTURE.with_suffix(".json").read_text())
    assert meta["G_kwargs"]["architecture"] == "skip"
    assert meta["D_kwargs"]["epilogue_kwargs"]["mbstd_group_size"] == 2
    G = Generator(GeneratorConfig(z_dim=64, w_dim=64, img_resolution=32, channel_base=1024, channel_max=64,
                                  mapping=MappingConfig(num_layers=2)))
    D = build_discriminator(DiscriminatorConfig(img_resolution=32, channel_base=1024, channel_max=64,
                                                mbstd_group_size=2))

    def state(prefix):
        return {k[len(prefix):].replace("noise_const", "noise.const").replace("noise_strength", "noise.strength"):
                torch.from_numpy(data[k]) for k in data.files if k.startswith(prefix)}

    G.load_state_dict(state("G."), strict=True)
    D.load_state_dict(state("D."), strict=True)
    return data, meta, G, D
