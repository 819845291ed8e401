"""`stylegan.nn.Runtime`: the switches the context managers set, resolved once at a network's
boundary and passed down explicitly; the same code paths as before, and no context variable read
inside a forward."""
import importlib
import threading

import pytest
import torch

from stylegan import perf
from stylegan.models import DiscriminatorConfig, Generator, GeneratorConfig, MappingConfig, build_discriminator
from stylegan.nn import Precision, Runtime, WeightCache, precision_scope, weight_cache
from stylegan.ops.settings import OpSettings, use_op_settings

MODULES_WITH_CONTEXT_VARS = {  # module -> the name of its ContextVar
    "stylegan.ops.settings": "_SETTINGS",
    "stylegan.nn.precision": "_PRECISION",
    "stylegan.nn.weight_cache": "_CURRENT",
    "stylegan.nn.runtime": "_EAGER",
}


def remove_context_vars(monkeypatch) -> None:
    """Replace every ContextVar the library has with one that fails when read, set or reset: what
    runs afterwards must get its settings from an explicit Runtime."""

    class Gone:
        def get(self, *a):
            raise AssertionError("a context variable was read inside a network forward")

        set = reset = get

    for module, name in MODULES_WITH_CONTEXT_VARS.items():
        monkeypatch.setattr(importlib.import_module(module), name, Gone())


def tiny_nets(res=16, c_dim=0, d_kw=(), **kw):
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=16, w_dim=16, c_dim=c_dim, img_resolution=res, channel_base=8 * res,
                                  channel_max=16, mapping=MappingConfig(num_layers=2), conv_clamp=256, **kw))
    D = build_discriminator(DiscriminatorConfig(img_resolution=res, c_dim=c_dim, channel_base=8 * res,
                                                channel_max=16, mbstd_group_size=2, conv_clamp=256,
                                                **kw, **dict(d_kw)))
    with torch.no_grad():  # non-zero noise strengths and biases, so every term of a layer counts
        for p in list(G.parameters()) + list(D.parameters()):
            if p.ndim <= 1:
                p.normal_(0, 0.3)
    return G, D


# ------------------------------------------------------------------------------- Runtime.current


def test_current_is_the_default_outside_every_scope():
    assert Runtime.current() == Runtime() == Runtime(OpSettings(), None, None, False)


@pytest.mark.parametrize("scope,expect", [
    (lambda: use_op_settings(demod=False), Runtime(ops=OpSettings(demod=False))),
    (lambda: perf.fast_paths(False), Runtime(ops=OpSettings(False, False, False, False))),
    (lambda: perf.fast_paths(True, bias_act=False), Runtime(ops=OpSettings(bias_act=False))),
    (lambda: perf.modconv_policy("unfused"), Runtime(ops=OpSettings(modconv="unfused"))),
    (lambda: perf.reference_mode(), Runtime(ops=OpSettings(False, False, False, False, "fused"))),
    (lambda: precision_scope("bf16"), Runtime(precision=Precision("bf16"))),
    (lambda: perf.precision_scope(Precision("fp16", num_low_res=2)), Runtime(precision=Precision("fp16", 2))),
    (lambda: perf.eager(), Runtime(eager=True)),
], ids=["use_op_settings", "fast_paths", "fast_paths_one", "modconv_policy", "reference_mode", "precision_scope",
        "perf.precision_scope", "eager"])
def test_current_reflects_each_context_manager(scope, expect):
    with scope():
        assert Runtime.current() == expect
    assert Runtime.current() == Runtime()


def test_current_reflects_weight_cache_and_nested_scopes():
    cache = WeightCache()
    with weight_cache(cache), perf.modconv_policy("fused"), precision_scope("bf16"):
        rt = Runtime.current()
        assert rt.weight_cache is cache and rt.ops.modconv == "fused" and rt.precision == Precision("bf16")
        with weight_cache() as inner, precision_scope(None):  # the enclosing cache is reused
            assert inner is cache and Runtime.current() == rt.replace(precision=None)
    assert Runtime.current().weight_cache is None


def test_describe_names_each_switch():
    assert Runtime().describe() == ("runtime: fast paths upfirdn2d,demod,bias_act,effnet; modconv auto; "
                                    "precision as constructed; weight cache off; eager off")
    cache = WeightCache()
    with perf.reference_mode(), precision_scope("bf16"), weight_cache(cache), perf.eager():
        line = Runtime.current().describe()
    assert line == ("runtime: fast paths none (reference forms); modconv fused; "
                    "precision bf16 in the 4 highest resolutions, clamp 256; weight cache on (0 entries); eager forced")
    assert "fast paths upfirdn2d,effnet;" in Runtime(ops=OpSettings(demod=False, bias_act=False)).describe()
    assert "precision fp32;" in Runtime(precision="fp32").describe()
    assert "no clamp" in Runtime(precision=Precision("fp16", conv_clamp=None)).describe()


def test_thread_started_inside_a_scope_does_not_see_it():
    seen = {}
    with perf.reference_mode(), precision_scope("bf16"), weight_cache(), perf.eager():
        inside = Runtime.current()
        t = threading.Thread(target=lambda: seen.setdefault("other", Runtime.current()))
        t.start()
        t.join()
    assert inside != Runtime() and seen["other"] == Runtime()


def test_runtime_is_frozen_and_validated():
    rt = Runtime(precision="bf16")
    assert rt.precision == Precision("bf16")
    with pytest.raises(AttributeError):
        rt.eager = True  # type: ignore[misc]
    with pytest.raises(TypeError, match="OpSettings"):
        Runtime(ops={"demod": False})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="precision must be one of"):
        Runtime(precision="fp8")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="WeightCache"):
        Runtime(weight_cache={})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bool"):
        Runtime(eager=1)  # type: ignore[arg-type]
    assert hash(rt) == hash(Runtime(precision=Precision("bf16")))  # usable as a torch.compile guard constant


# ---------------------------------------------------------------------- resolved at the boundary


def count_calls(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_explicit_runtime_equals_the_context_manager_and_picks_the_path(monkeypatch):
    """G(z, runtime=Runtime(ops=OpSettings(modconv="unfused"))) is G(z) under modconv_policy("unfused"),
    bit for bit and path for path; the default ("auto" on CPU) takes the fused form in some layers."""
    import stylegan.ops.conv as conv

    G, _ = tiny_nets()
    z = torch.randn(2, 16)
    fused = count_calls(monkeypatch, conv, "_per_sample_conv")
    unfused = count_calls(monkeypatch, conv, "_scaled_shared_conv")

    def run(**kw):
        fused.clear(), unfused.clear()
        img = G(z, **kw)
        return img, len(fused), len(unfused)

    explicit = run(runtime=Runtime(ops=OpSettings(modconv="unfused")))
    with perf.modconv_policy("unfused"):
        scoped = run()
    default = run()
    assert torch.equal(explicit[0], scoped[0]) and explicit[1:] == scoped[1:]
    assert explicit[1] == 0 and explicit[2] > 0  # every modulated conv unfused
    assert default[1] > 0  # the default policy fuses somewhere: a different path
    torch.testing.assert_close(default[0], explicit[0], atol=1e-5, rtol=0)  # ... for the same function
    with perf.modconv_policy("unfused"):  # an explicit runtime wins over the context
        assert run(runtime=Runtime())[1:] == default[1:]


def test_explicit_runtime_selects_the_reference_ops_in_the_discriminator(monkeypatch):
    bias_act = importlib.import_module("stylegan.ops.bias_act")  # the package exports a function of that name
    filters = importlib.import_module("stylegan.ops.filters")

    _, D = tiny_nets(architecture="resnet")
    img = torch.randn(2, 3, 16, 16)
    ref_fir = count_calls(monkeypatch, filters, "upfirdn2d_reference")
    ref_act = count_calls(monkeypatch, bias_act, "bias_act_reference")
    with perf.fast_paths(False):
        scoped = D(img)
    n_scoped = len(ref_fir), len(ref_act)
    ref_fir.clear(), ref_act.clear()
    explicit = D.scores(img, runtime=Runtime(ops=OpSettings(False, False, False, False)))[0]
    assert torch.equal(explicit, scoped) and (len(ref_fir), len(ref_act)) == n_scoped
    assert min(n_scoped) > 0
    ref_fir.clear(), ref_act.clear()
    D(img)
    assert (len(ref_fir), len(ref_act)) == (0, 0)  # the default takes the fast forms


def test_explicit_precision_and_weight_cache_equal_their_scopes():
    G, D = tiny_nets()
    z, img = torch.randn(2, 16), torch.randn(2, 3, 16, 16)
    p = Precision("bf16", num_low_res=1)
    with precision_scope(p):
        scoped = G(z), D(img)
    explicit = G(z, runtime=Runtime(precision=p)), D(img, runtime=Runtime(precision=p))
    assert torch.equal(explicit[0], scoped[0]) and torch.equal(explicit[1], scoped[1])
    assert not torch.equal(explicit[0], G(z))  # bf16 in the 16x16 block: another path
    a, b = WeightCache(), WeightCache()
    with torch.no_grad():
        with weight_cache(a):
            scoped = G(z)
        explicit = G(z, runtime=Runtime(weight_cache=b))
    assert torch.equal(explicit, scoped) and len(a) == len(b) > 0


def forwards(G, D, rt, c=None):
    """Every public network entry point, each given `rt`; returns their outputs."""
    z = torch.randn(2, G.z_dim)
    img = torch.randn(2, G.img_channels, G.img_resolution, G.img_resolution)
    ws = G.mapping(z, c, runtime=rt)
    out = [ws, G(z, c, runtime=rt), G.synthesis(ws, runtime=rt), D(img, c, runtime=rt)]
    if hasattr(D, "scores"):
        out += list(t for t in D.scores(img, c, runtime=rt) if t is not None)
    if hasattr(G.synthesis, "forward_at"):
        out += [G.synthesis.forward_at(ws, 8, 0.5, runtime=rt), D.forward_at(img, c, 8, 0.5, runtime=rt)]
    return out


@pytest.mark.parametrize("kind", ["v2", "v2-resnet-cond", "v2-growing", "v1"])
def test_no_context_variable_is_read_inside_a_network_forward(kind, monkeypatch):
    """With the runtime resolved beforehand, every forward (and its backward) runs with the context
    variables gone: no op, layer or block reads one."""
    kw = {"v2": {}, "v2-resnet-cond": dict(architecture="resnet", c_dim=3, d_kw={"aux_classes": 3}),
          "v2-growing": dict(growing=True, architecture="orig", num_fp16_res=0),
          "v1": dict(version=1, architecture="orig", num_fp16_res=0)}[kind]
    G, D = tiny_nets(**kw)
    c = torch.eye(3)[[0, 2]] if G.c_dim else None
    with perf.modconv_policy("auto"):
        rt = Runtime.current()
    torch.manual_seed(1)
    expected = forwards(G, D, None, c)

    remove_context_vars(monkeypatch)
    with pytest.raises(AssertionError, match="context variable"):
        Runtime.current()
    torch.manual_seed(1)
    got = forwards(G, D, rt, c)
    for a, b in zip(got, expected):
        assert torch.equal(a, b)
    sum(t.square().sum() for t in got[1:]).backward()


def test_runtime_current_is_read_once_per_call(monkeypatch):
    G, D = tiny_nets(c_dim=3)
    c = torch.eye(3)[[0, 1]]
    calls = []
    original = Runtime.current.__func__

    def counted(cls):
        calls.append(1)
        return original(cls)

    monkeypatch.setattr(Runtime, "current", classmethod(counted))
    for call in (lambda: G(torch.randn(2, 16), c), lambda: D(torch.randn(2, 3, 16, 16), c),
                 lambda: D.scores(torch.randn(2, 3, 16, 16), c), lambda: G.synthesis(torch.randn(2, G.num_ws, 16))):
        calls.clear()
        call()
        assert len(calls) == 1
