import os
import urllib.request

import pytest
import torch

# Two cores: keep each test process single-threaded when pytest-xdist runs two workers.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP spin-waiting on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def offline(monkeypatch, tmp_path, one_thread):
    """No downloads, a private cache, and one thread (tiny tensors on a busy 2-core box)."""
    monkeypatch.setenv("STYLEGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("STYLEGAN_OFFLINE", "1")
    monkeypatch.delenv("STYLEGAN_DETECTOR_DIR", raising=False)

    def no_network(*a, **k):
        raise AssertionError("tests must not download")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
