"""Where the official StyleGAN2 reference fixture lives, and the marker for tests that need it.

The fixture sits in the `shared/` folder beside the checkout (`../shared/fixtures`); set
STYLEGAN_SHARED to point elsewhere. Locally a missing fixture skips those tests; under CI
(CI=true) they run and fail loudly, so a parity regression can never hide behind a skip.
"""
import os
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
_CANDIDATES = [Path(os.environ["STYLEGAN_SHARED"])] if os.environ.get("STYLEGAN_SHARED") else []
_CANDIDATES += [_ROOT.parent / "shared", _ROOT / "shared"]

FIXTURE = next((d / "fixtures" / "official_sg2_tiny.npz" for d in _CANDIDATES
                if (d / "fixtures" / "official_sg2_tiny.npz").exists()),
               _CANDIDATES[0] / "fixtures" / "official_sg2_tiny.npz")

needs_fixture = pytest.mark.skipif(not FIXTURE.exists() and os.environ.get("CI", "") != "true",
                                   reason=f"official fixture not found at {FIXTURE}")


def load_fixture_networks():
    """(arrays, meta, G, D): our networks built at the fixture's config, loaded with its weights by
    plain state-dict keys (only the noise buffers are renamed)."""
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
