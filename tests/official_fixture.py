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
