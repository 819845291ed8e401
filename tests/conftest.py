import os

import pytest
import torch

# Two cores: keep each test process single-threaded when pytest-xdist runs two workers.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
