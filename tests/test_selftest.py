"""`stylegan selftest`: passes on a correct CPU installation, names what breaks, refuses what is absent."""
import re

import pytest
import torch
from click.testing import CliRunner

from stylegan.cli import main
from stylegan.ops import filters
from stylegan.selftest import SelftestOptions, run_selftest
from stylegan.selftest.ddp import check_ddp
from stylegan.selftest.fixture import FIXTURE, fixture_calls, fixture_errors, fixture_networks, load_fixture
from stylegan.selftest.parity import LOW_PRECISION_REL_TOL, check_fixture
from stylegan.selftest.phases import small_config
from stylegan.selftest.result import CheckFailed, CheckSkipped, run_check
from stylegan.selftest.speed import SpeedBudget, SpeedConfig, check_speed

CORRECTNESS = "fixture,train,fast"


def selftest(*args):
    return CliRunner().invoke(main, ["selftest", "--device", "cpu", *args])


def rows(output: str) -> dict[str, str]:
    """check name -> status word of the printed table."""
    return {m.group(2): m.group(1) for m in re.finditer(r"^(ok|FAIL|skip)\s+(\S+)", output, re.M)}


def test_quick_selftest_passes_on_cpu():
    result = selftest("--quick", "--only", CORRECTNESS)
    assert result.exit_code == 0, result.output
    assert rows(result.output) == {"fixture": "ok", "train/phases": "ok", "train/fp16-clamp": "skip",
                                   "fast/upfirdn2d": "ok", "fast/conv2d_resample": "ok", "fast/modconv": "ok",
                                   "fast/bias_act": "ok", "fast/networks": "ok", "fast/weight_cache": "ok"}
    assert "torch " + torch.__version__ in result.output and "selftest passed" in result.output
    assert ("runtime: fast paths upfirdn2d,demod,bias_act,effnet; modconv auto; precision as constructed; "
            "weight cache off; eager off") in result.output.splitlines()[1]


def test_broken_fast_path_fails_and_is_named(monkeypatch):
    real = filters._upfirdn2d_fast

    def off_by_a_bit(*args, **kwargs):  # a fast path that is 0.1% off its reference
        y = real(*args, **kwargs)
        return None if y is None else y * 1.001

    monkeypatch.setattr(filters, "_upfirdn2d_fast", off_by_a_bit)
    result = selftest("--quick", "--only", "fixture,fast/upfirdn2d,fast/bias_act")
    assert result.exit_code == 1
    status = rows(result.output)
    assert status == {"fixture": "FAIL", "fast/upfirdn2d": "FAIL", "fast/bias_act": "ok"}
    assert "selftest failed" in result.output and "FAILED: fixture, fast/upfirdn2d" in result.output
    assert "fast vs reference differ" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("target,replacement,message", [
    ("stylegan.training.losses.g_nonsaturating_loss", lambda logits: logits * float("nan"), "Gmain: non-finite losses"),
    ("stylegan.selftest.phases.update_ema", lambda G_ema, G, beta: None, "EMA: G_ema did not move towards G"),
])
def test_broken_training_phase_is_named(monkeypatch, target, replacement, message):
    monkeypatch.setattr(target, replacement)
    result = selftest("--quick", "--only", "train/phases")
    assert result.exit_code == 1 and rows(result.output) == {"train/phases": "FAIL"}
    assert f"step 0: {message}" in result.output


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_unavailable_device_is_a_clear_error(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    result = CliRunner().invoke(main, ["selftest", "--device", device])
    assert result.exit_code == 1
    assert f"--device {device} requested but" in result.output and "not available" in result.output
    assert "Traceback" not in result.output


def test_unknown_check_and_bad_ddp_are_clear_errors():
    result = selftest("--only", "nope")
    assert result.exit_code == 1 and "unknown check(s) ['nope']" in result.output and "fast/modconv" in result.output
    result = selftest("--ddp", "1")
    assert result.exit_code == 2 and "--ddp" in result.output


def test_fixture_is_package_data_and_matches_in_low_precision(one_thread):
    assert FIXTURE.is_file() and FIXTURE.with_suffix(".json").is_file()
    assert FIXTURE.parent.parent.name == "selftest" and "stylegan" in FIXTURE.parts
    fx = load_fixture()
    G, D = fixture_networks(fx)
    for dtype in ("bf16", "fp16"):
        detail = check_fixture(torch.device("cpu"), dtype)
        assert f"<= {LOW_PRECISION_REL_TOL[dtype]:g} x max" in detail
    # The comparison sees small damage: 2% on one layer's weights is far outside the fp32 bound.
    with torch.no_grad():
        G.synthesis.b32.torgb.weight.mul_(1.02)
    errors = fixture_errors(fixture_calls(G, D, fx.tensors["in.z"]), fx)
    assert errors["out.ws"] == 0 and errors["out.img_const"] > 100 * 1e-4


def test_check_results_and_failures():
    ok = run_check("a", lambda: "fine")
    assert (ok.ok, ok.skipped, ok.status, ok.detail) == (True, False, "pass", "fine") and ok.seconds >= 0

    def failing():
        raise CheckFailed("3 > 2")

    def skipped():
        raise CheckSkipped("CUDA only")

    def crashing():
        raise RuntimeError("kernel exploded\nsecond line")

    assert (run_check("b", failing).status, run_check("b", failing).detail) == ("fail", "3 > 2")
    assert run_check("c", skipped).status == "skip" and run_check("c", skipped).ok
    crash = run_check("d", crashing)
    assert not crash.ok and crash.detail == "raised RuntimeError: kernel exploded"


def test_speed_check_measures_img_per_second(one_thread):
    spec = SpeedConfig("tiny", lambda: small_config(resolution=16))
    detail = check_speed(spec, torch.device("cpu"), "fp32", SpeedBudget(gen_batch=2, train_batch=2, seconds=0.0, warmup=0))
    gen, train = map(float, re.findall(r"([\d.]+) img/s", detail))
    assert gen > 0 and train > 0 and "batch 2" in detail


def test_python_api_runs_selected_checks():
    results = run_selftest(SelftestOptions(device="cpu", quick=True, only=("fast/bias_act", "train/fp16-clamp")))
    assert [(r.name, r.status) for r in results] == [("train/fp16-clamp", "skip"), ("fast/bias_act", "pass")]


@pytest.mark.slow
def test_ddp_check_two_gloo_processes_stay_identical():
    detail = check_ddp(torch.device("cpu"), 2)
    assert "2 processes (gloo)" in detail and "identical" in detail
    with pytest.raises(CheckSkipped):
        check_ddp(torch.device("cpu"), 1)
