"""Official NVIDIA pickles: safe import (nothing from the file runs) and exact numerical parity.

No official pickle can be downloaded here, so the tests build faithful ones: a throwaway package
in tmp_path plays `torch_utils.persistence` / `dnnlib` while pickling (producing the official
reduce structure) and is removed before loading, so the loader never sees it.
"""
import builtins
import collections
import contextlib
import importlib
import json
import os
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import stylegan
from stylegan.io.checkpoint import CheckpointError, read_checkpoint
from stylegan.io.official import (OfficialFormatError, discriminator_config_from_kwargs,
                                  generator_config_from_kwargs, load_official, official_to_ours_state,
                                  read_official)
from stylegan.io.official.tf_common import tf_conv_flip as _conv_flip
from stylegan.models import (DiscriminatorConfig, Generator, GeneratorConfig, MappingConfig,
                             build_discriminator)
from stylegan.ops import conv2d_resample, setup_filter

from official_fixture import FIXTURE, needs_fixture
OUTPUTS = ("out.ws", "out.ws_trunc", "out.img_const", "out.img_none", "out.img_trunc", "out.d_logits")


def fixture():
    data = np.load(FIXTURE)
    meta = json.loads(FIXTURE.with_suffix(".json").read_text())
    tensors = {k: torch.from_numpy(data[k].copy()) for k in data.files}
    return tensors, meta


def prefixed(tensors, prefix):
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def run_calls(G, D, z, c):
    """The calls listed in the fixture JSON, with our argument names."""
    with torch.no_grad():
        ws = G.mapping(z, c)
        out = {
            "out.ws": ws,
            "out.ws_trunc": G.mapping(z, c, psi=0.7, cutoff=4),
            "out.img_const": G.synthesis(ws, noise_mode="const"),
            "out.img_none": G.synthesis(ws, noise_mode="none"),
            "out.img_trunc": G(z, c, psi=0.7, cutoff=4, noise_mode="const"),
        }
        if D is not None:
            out["out.d_logits"] = D(out["out.img_const"], c)
    return out


def assert_fixture_parity(G, D, tensors, names=OUTPUTS, tol=1e-4):
    out = run_calls(G, D, tensors["in.z"], tensors["in.c"])
    errors = {k: (out[k] - tensors[k]).abs().max().item() for k in names}
    assert all(e <= tol for e in errors.values()), errors
    return errors


# =========================================================================================
# (a) the shared fixture through the kwargs -> config and key mapping code
# =========================================================================================

@needs_fixture
def test_fixture_parity_through_official_mapping():
    tensors, meta = fixture()
    gcfg, gnotes = generator_config_from_kwargs(meta["G_kwargs"])
    dcfg, dnotes = discriminator_config_from_kwargs(meta["D_kwargs"])
    assert (gcfg.z_dim, gcfg.w_dim, gcfg.img_resolution, gcfg.mapping.num_layers) == (64, 64, 32, 2)
    assert (gcfg.channel_base, gcfg.channel_max, gcfg.architecture) == (1024, 64, "skip")
    assert (dcfg.architecture, dcfg.mbstd_group_size) == ("resnet", 2)
    assert gnotes == [] and dnotes == []
    G, D = Generator(gcfg), build_discriminator(dcfg)
    G.load_state_dict(official_to_ours_state(prefixed(tensors, "G."), G, "fixture G"))
    D.load_state_dict(official_to_ours_state(prefixed(tensors, "D."), D, "fixture D"))
    errors = assert_fixture_parity(G.eval(), D.eval(), tensors)
    print("fixture max abs errors:", errors)


# =========================================================================================
# Fake official packages (used only while pickling)
# =========================================================================================

PERSISTENCE_SRC = '''
"""Test double of torch_utils.persistence: reproduces the pickled structure only."""
import pathlib

_version = 6


def _reconstruct_persistent_obj(meta):
    pathlib.Path({marker!r}).write_text("the official reconstructor ran")
    raise RuntimeError("must never be called by the importer")


def persistent_class(orig_class, module_src):
    class Persistent(orig_class):
        _orig_module_src = module_src
        _orig_class_name = orig_class.__name__

        def __reduce__(self):
            fields = list(super().__reduce__())
            fields += [None] * max(3 - len(fields), 0)
            meta = dict(type="class", version=_version, module_src=self._orig_module_src,
                        class_name=self._orig_class_name, state=fields[2])
            return (_reconstruct_persistent_obj, (meta,), None) + tuple(fields[3:])

    Persistent.__name__ = orig_class.__name__
    return Persistent
'''

DNNLIB_UTIL_SRC = '''
class EasyDict(dict):
    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name)

    def __setattr__(self, name, value):
        self[name] = value
'''

TF_NETWORK_SRC = '''
"""Test double of dnnlib.tflib.network.Network: pickles the official state dict."""


class Network:
    def __init__(self, name, func_name, static_kwargs, variables, components=None, module_src=""):
        self.name, self.func_name, self.module_src = name, func_name, module_src
        self.static_kwargs, self.variables = dict(static_kwargs), list(variables)
        self.components = dict(components or {})

    def __getstate__(self):
        return dict(version=4, name=self.name, static_kwargs=dict(self.static_kwargs),
                    components=dict(self.components), build_module_src=self.module_src,
                    build_func_name=self.func_name, variables=self.variables,
                    input_shapes=[[None, 8], [None, 0]], output_shapes=[[None, 3, 16, 16]],
                    input_names=["latents_in", "labels_in"], output_names=["images_out"])

    def __setstate__(self, state):
        raise RuntimeError("the test double is only for pickling")
'''


def module_src_with_side_effect(marker: Path, classes=("Generator",)) -> str:
    body = "\n".join(f"class {c}:\n    pass\n" for c in classes)
    return (f"import pathlib\npathlib.Path({str(marker)!r}).write_text('module_src was executed')\n"
            f"import os\nos.system('touch {marker}.os')\n{body}")


@contextlib.contextmanager
def fake_official_packages(tmp_path: Path):
    """Import test doubles of torch_utils / dnnlib from tmp_path; remove every trace on exit."""
    root = tmp_path / "fakepkgs"
    marker = tmp_path / "reconstructor_ran"
    files = {
        "torch_utils/__init__.py": "",
        "torch_utils/persistence.py": PERSISTENCE_SRC.format(marker=str(marker)),
        "dnnlib/__init__.py": "from .util import EasyDict\n",
        "dnnlib/util.py": DNNLIB_UTIL_SRC,
        "dnnlib/tflib/__init__.py": "",
        "dnnlib/tflib/network.py": TF_NETWORK_SRC,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    names = ("torch_utils", "dnnlib")
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in names}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        ns = type("Fake", (), {})()
        ns.persistence = importlib.import_module("torch_utils.persistence")
        ns.EasyDict = importlib.import_module("dnnlib.util").EasyDict
        ns.Network = importlib.import_module("dnnlib.tflib.network").Network
        ns.marker = marker
        yield ns
    finally:
        sys.path.remove(str(root))
        for k in [k for k in sys.modules if k.split(".")[0] in names]:
            del sys.modules[k]
        sys.modules.update(saved)
        importlib.invalidate_caches()
    assert not marker.exists()


BUFFERS = {"resample_filter", "w_avg", "noise_const", "p",
           "transform", "freqs", "phases", "magnitude_ema", "up_filter", "down_filter"}  # + StyleGAN3's
G_RULES = [
    (r"", "Generator"), (r"mapping", "MappingNetwork"), (r"mapping\.(fc\d+|embed)", "FullyConnectedLayer"),
    (r"synthesis", "SynthesisNetwork"), (r"synthesis\.b\d+", "SynthesisBlock"),
    (r"synthesis\.b\d+\.conv[01]", "SynthesisLayer"), (r"synthesis\.b\d+\.torgb", "ToRGBLayer"),
    (r".*\.affine", "FullyConnectedLayer"), (r"synthesis\.b\d+\.skip", "Conv2dLayer"),
    (r"synthesis\.input", "SynthesisInput"),
]
G3_RULES = [
    (r"", "Generator"), (r"mapping", "MappingNetwork"), (r"mapping\.(fc\d+|embed)", "FullyConnectedLayer"),
    (r"synthesis", "SynthesisNetwork"), (r"synthesis\.input", "SynthesisInput"),
    (r"synthesis\.L\d+_\d+_\d+", "SynthesisLayer"), (r".*\.affine", "FullyConnectedLayer"),
]
D_RULES = [
    (r"", "Discriminator"), (r"b4", "DiscriminatorEpilogue"), (r"b4\.mbstd", "MinibatchStdLayer"),
    (r"b\d+", "DiscriminatorBlock"), (r"b\d+\.(fromrgb|conv0|conv1|conv|skip)", "Conv2dLayer"),
    (r"b4\.(fc|out)", "FullyConnectedLayer"), (r"mapping", "MappingNetwork"),
    (r"mapping\.(fc\d+|embed)", "FullyConnectedLayer"),
]


def official_tree(fake, state, rules, module_src, init_kwargs, attrs=(), extra_modules=()):
    """A tree of persistent nn.Modules with the official classes, names and __dict__ layout."""
    classes = {}

    def cls_for(path):
        name = next(n for pattern, n in rules if re.fullmatch(pattern, path))
        if name not in classes:
            classes[name] = fake.persistence.persistent_class(type(name, (torch.nn.Module,), {}), module_src)
        return classes[name]

    modules = {"": cls_for("")()}

    def get(path):
        if path not in modules:
            parent, _, child = path.rpartition(".")
            modules[path] = cls_for(path)()
            get(parent).add_module(child, modules[path])
        return modules[path]

    for key, value in state.items():
        path, _, leaf = key.rpartition(".")
        m = get(path)
        if leaf in BUFFERS:
            m.register_buffer(leaf, value.clone())
        else:
            m.register_parameter(leaf, torch.nn.Parameter(value.clone()))
        if leaf == "weight" and value.ndim == 2:  # FullyConnectedLayer keeps numpy float64 gains
            m.weight_gain = np.float64(1 / np.sqrt(value.shape[1]))
            m.activation = "linear"
    for path in extra_modules:
        get(path)
    for m in modules.values():
        m._init_args, m._init_kwargs = (), fake.EasyDict()
    root = modules[""]
    root._init_kwargs = init_kwargs
    for k, v in dict(attrs).items():
        setattr(root, k, v)
    return root.eval().requires_grad_(False)


def fake_snapshot(fake, tensors, meta, module_src, *, augment_p=0.25, g_layout="stylegan3", sg3=False):
    """{'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'} as training_loop pickles it."""
    E = fake.EasyDict
    gk = dict(meta["G_kwargs"])
    mapping_kwargs = E(gk.pop("mapping_kwargs"))
    base = {k: gk.pop(k) for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")}
    sg3_kwargs = E(base, mapping_kwargs=mapping_kwargs, fused_modconv_default="inference_only", **gk)
    ada_kwargs = E(base, mapping_kwargs=mapping_kwargs, synthesis_kwargs=E(gk))
    g_state = prefixed(tensors, "G.")
    g_attrs = dict(base, num_ws=8)
    extra = ("synthesis.input",) if sg3 else ()
    G_ema = official_tree(fake, g_state, G_RULES, module_src, ada_kwargs if g_layout == "ada" else sg3_kwargs,
                          g_attrs, extra)
    g_train = dict(g_state)
    g_train["mapping.fc0.bias"] = g_train["mapping.fc0.bias"] + 0.5  # G differs from G_ema
    G = official_tree(fake, g_train, G_RULES, module_src, sg3_kwargs, g_attrs, extra)
    dk = dict(meta["D_kwargs"])
    d_kwargs = E(dk, block_kwargs=E(freeze_layers=0), mapping_kwargs=E(),
                 epilogue_kwargs=E(dk.pop("epilogue_kwargs")))
    D = official_tree(fake, prefixed(tensors, "D."), D_RULES, module_src, d_kwargs,
                      {"c_dim": 0, "img_resolution": 32, "img_channels": 3}, ("b4.mbstd",))
    snap = {"G": G, "D": D, "G_ema": G_ema, "augment_pipe": None,
            "training_set_kwargs": E(class_name="training.dataset.ImageFolderDataset", path="data/x.zip",
                                     use_labels=False, max_size=100, xflip=True, resolution=32)}
    if augment_p is not None:
        snap["augment_pipe"] = official_tree(fake, {"p": torch.tensor(augment_p)}, [(r"", "AugmentPipe")],
                                             module_src, E(xflip=1, rotate90=1))
    return snap


def fake_sg3_snapshot(fake, module_src, d_module_src, *, config="T", layer_edit=None):
    """A stylegan3-repository snapshot of a StyleGAN3 generator: G / G_ema from NVIDIA's StyleGAN3
    fixture (kwargs, weights, and the attributes its layers recorded, with the official numpy types),
    D the StyleGAN2 discriminator (from the StyleGAN2 fixture: also 32x32 RGB)."""
    from stylegan.selftest.fixture import SG3_FIXTURES, load_fixture

    fx = load_fixture(SG3_FIXTURES[config])
    E = fake.EasyDict
    gk = dict(fx.meta["G_kwargs"])
    g_kwargs = E(gk, mapping_kwargs=E(gk.pop("mapping_kwargs")))
    base = {k: gk[k] for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")}

    def generator(state):
        G = official_tree(fake, state, G3_RULES, module_src, g_kwargs, dict(base, num_ws=len(fx.meta["layers"]) + 1))
        for lname, attrs in fx.meta["layers"].items():
            layer = getattr(G.synthesis, lname)
            for attr, value in attrs.items():
                if attr.endswith("_size"):
                    value = np.broadcast_to(np.asarray(value), [2])
                elif isinstance(value, float):
                    value = np.float64(value)
                setattr(layer, attr, value)
            if layer_edit is not None:
                layer_edit(lname, layer)
        G.synthesis.layer_names = list(fx.meta["layers"])
        return G

    g_state = fx.prefixed("G.")
    g_train = dict(g_state)
    g_train["mapping.fc0.bias"] = g_train["mapping.fc0.bias"] + 0.5  # G differs from G_ema
    tensors, meta = fixture()
    dk = dict(meta["D_kwargs"])
    d_kwargs = E(dk, block_kwargs=E(freeze_layers=0), mapping_kwargs=E(),
                 epilogue_kwargs=E(dk.pop("epilogue_kwargs")))
    D = official_tree(fake, prefixed(tensors, "D."), D_RULES, d_module_src, d_kwargs,
                      {"c_dim": 0, "img_resolution": 32, "img_channels": 3}, ("b4.mbstd",))
    return fx, {"G": generator(g_train), "D": D, "G_ema": generator(g_state), "augment_pipe": None,
                "training_set_kwargs": E(class_name="training.dataset.ImageFolderDataset", path="data/x.zip",
                                         use_labels=True, max_size=100, xflip=False, resolution=32)}


def write_fake_sg3_snapshot(tmp_path, name="network-snapshot-sg3.pkl", **kw):
    src_marker = tmp_path / "module_src_ran"
    path = tmp_path / name
    src = module_src_with_side_effect(src_marker, ("Generator", "SynthesisInput", "SynthesisLayer"))
    d_src = module_src_with_side_effect(src_marker, ("Discriminator", "DiscriminatorBlock"))  # networks_stylegan2
    with fake_official_packages(tmp_path) as fake:
        fx, snap = fake_sg3_snapshot(fake, src, d_src, **kw)
        with open(path, "wb") as f:
            pickle.dump(snap, f, protocol=4)
    return path, fx, src_marker


def write_fake_snapshot(tmp_path, name="network-snapshot-000000.pkl", protocol=4, **kw):
    tensors, meta = fixture()
    src_marker = tmp_path / "module_src_ran"
    path = tmp_path / name
    with fake_official_packages(tmp_path) as fake:
        snap = fake_snapshot(fake, tensors, meta, module_src_with_side_effect(src_marker), **kw)
        with open(path, "wb") as f:
            pickle.dump(snap, f, protocol=protocol)
    return path, tensors, src_marker


def assert_nothing_ran(src_marker: Path):
    assert not src_marker.exists() and not Path(f"{src_marker}.os").exists()
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules


# =========================================================================================
# (b) faithful PyTorch snapshot pickles
# =========================================================================================

@needs_fixture
@pytest.mark.parametrize("g_layout,protocol", [("stylegan3", 4), ("ada", 3)])  # Python 3.8+ / 3.7 defaults
def test_pytorch_snapshot_parity_and_nothing_executed(tmp_path, g_layout, protocol):
    path, tensors, src_marker = write_fake_snapshot(tmp_path, g_layout=g_layout, protocol=protocol)
    raw = path.read_bytes()
    assert b"torch_utils.persistence" in raw and b"_reconstruct_persistent_obj" in raw
    assert b"module_src was executed" in raw  # the source really is inside the file

    G = load_official(path)  # default: G_ema
    D = load_official(path, which="D")
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    assert not any(p.requires_grad for p in D.parameters())
    errors = assert_fixture_parity(G, D, tensors)
    print(f"pickle ({g_layout}) max abs errors:", errors)
    assert_nothing_ran(src_marker)

    # G is the training generator (perturbed here), distinct from G_ema.
    G_train = load_official(path, which="G")
    with torch.no_grad():
        assert not torch.allclose(G_train.mapping(tensors["in.z"]), G.mapping(tensors["in.z"]))
    # stylegan.load dispatches pickles to the same importer.
    G2 = stylegan.load(path)
    assert_fixture_parity(G2, None, tensors, names=OUTPUTS[:-1])

    pkl = read_official(path)
    assert pkl.source_format == "pytorch" and set(pkl.networks) == {"G", "D", "G_ema"}
    assert pkl.info["augment_pipe_p"] == pytest.approx(0.25)
    assert pkl.info["training_set_kwargs"]["resolution"] == 32
    if g_layout == "stylegan3":
        assert any("fused_modconv_default" in n for n in pkl.networks["G_ema"].notes)
    assert_nothing_ran(src_marker)


# =========================================================================================
# (c) TensorFlow pickles: our weights -> TF layout (independent inverse) -> importer -> ours
# =========================================================================================

def randomize(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not name.endswith("resample_filter"):
                t.copy_(torch.randn(t.shape, generator=g) * (0.1 if name.endswith("strength") else 1.0))
    return module


def tf_layout_generator(G):
    """Our generator -> TF variables (mapping, synthesis, top), walking the architecture."""
    sd = {k: v.numpy().astype(np.float32) for k, v in G.state_dict().items()}
    cfg = G.cfg
    mapping = []
    if cfg.c_dim:
        mapping += [("LabelEmbed/weight", sd["mapping.embed.weight"].T), ("LabelEmbed/bias", sd["mapping.embed.bias"])]
    for i in range(cfg.mapping.num_layers):
        mapping += [(f"Dense{i}/weight", sd[f"mapping.fc{i}.weight"].T), (f"Dense{i}/bias", sd[f"mapping.fc{i}.bias"])]
    synthesis, noises = [], []

    def to_tf_conv(w, flip=False):  # [out, in, kh, kw] -> [kh, kw, in, out]; TF flips upsampling kernels
        w = np.transpose(w, (2, 3, 1, 0))
        return np.ascontiguousarray(w[::-1, ::-1] if flip else w)

    def modconv(scope, ours, flip=False, noise=True):
        out = [(f"{scope}/weight", to_tf_conv(sd[f"{ours}.weight"], flip)),
               (f"{scope}/mod_weight", sd[f"{ours}.affine.weight"].T),
               (f"{scope}/mod_bias", sd[f"{ours}.affine.bias"] - 1)]
        if noise:
            out.append((f"{scope}/noise_strength", sd[f"{ours}.noise.strength"]))
            noises.append(sd[f"{ours}.noise.const"][None, None])
        return out + [(f"{scope}/bias", sd[f"{ours}.bias"])]

    for res in G.synthesis.block_resolutions:
        b = f"synthesis.b{res}"
        if res == 4:
            synthesis.append(("4x4/Const/const", sd[f"{b}.const"][None]))
            synthesis += modconv("4x4/Conv", f"{b}.conv1")
        else:
            synthesis += modconv(f"{res}x{res}/Conv0_up", f"{b}.conv0", flip=True)
            synthesis += modconv(f"{res}x{res}/Conv1", f"{b}.conv1")
            if cfg.architecture == "resnet":
                synthesis.append((f"{res}x{res}/Skip/weight", to_tf_conv(sd[f"{b}.skip.weight"], flip=True)))
        if f"{b}.torgb.weight" in sd:
            synthesis += modconv(f"{res}x{res}/ToRGB", f"{b}.torgb", noise=False)
    synthesis += [(f"noise{i}", n) for i, n in enumerate(noises)]
    top = [("lod", np.float32(0)), ("dlatent_avg", sd["mapping.w_avg"])]
    return mapping, synthesis, top


def tf_layout_discriminator(D):
    sd = {k: v.numpy().astype(np.float32) for k, v in D.state_dict().items()}
    conv = lambda w: np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))  # noqa: E731
    out = []

    def layer(scope, ours, fn=conv, bias=True):
        out.append((f"{scope}/weight", fn(sd[f"{ours}.weight"])))
        if bias:
            out.append((f"{scope}/bias", sd[f"{ours}.bias"]))

    for res in D.block_resolutions:
        b, s = f"b{res}", f"{res}x{res}"
        if f"{b}.fromrgb.weight" in sd:
            layer(f"{s}/FromRGB", f"{b}.fromrgb")
        layer(f"{s}/Conv0", f"{b}.conv0")
        layer(f"{s}/Conv1_down", f"{b}.conv1")
        if f"{b}.skip.weight" in sd:
            layer(f"{s}/Skip", f"{b}.skip", bias=False)
    if "b4.fromrgb.weight" in sd:
        layer("4x4/FromRGB", "b4.fromrgb")
    layer("4x4/Conv", "b4.conv")
    layer("4x4/Dense0", "b4.fc", fn=lambda w: w.T)
    layer("Output", "b4.out", fn=lambda w: w.T)
    if D.c_dim:
        layer("LabelEmbed", "mapping.embed", fn=lambda w: w.T)
        for i in range(D.cfg.mapping.num_layers):
            layer(f"Mapping{i}", f"mapping.fc{i}", fn=lambda w: w.T)
    return out


TF_CASES = [("skip", "resnet", 0, 4), ("resnet", "skip", 0, 2), ("orig", "orig", 0, 5), ("skip", "resnet", 3, 4)]


@pytest.mark.parametrize("g_arch,d_arch,c_dim,protocol", TF_CASES)
def test_tensorflow_pickle_roundtrip(tmp_path, g_arch, d_arch, c_dim, protocol):
    fmap_base, fmap_max, res = 64, 16, 16  # channel_base = 2 * fmap_base
    gcfg = GeneratorConfig(z_dim=8, w_dim=12, c_dim=c_dim, img_resolution=res, architecture=g_arch,
                           channel_base=2 * fmap_base, channel_max=fmap_max, mapping=MappingConfig(num_layers=2))
    dcfg = DiscriminatorConfig(c_dim=c_dim, img_resolution=res, architecture=d_arch, channel_base=2 * fmap_base,
                               channel_max=fmap_max, mbstd_group_size=2,
                               mapping=MappingConfig(num_layers=2 if c_dim else 8, w_avg_beta=None))
    G = randomize(Generator(gcfg), 1).eval()
    G_ema = randomize(Generator(gcfg), 2).eval()
    D = randomize(build_discriminator(dcfg), 3).eval()
    marker = tmp_path / "build_module_src_ran"
    src = module_src_with_side_effect(marker, ("G_main",))
    common = dict(num_channels=3, resolution=res, label_size=c_dim, fmap_base=fmap_base, fmap_max=fmap_max)
    gk = dict(common, architecture=g_arch, latent_size=8, dlatent_size=12, mapping_layers=2, mapping_fmaps=12,
              truncation_psi=0.5)
    dk = dict(common, architecture=d_arch, mbstd_group_size=2, mapping_lrmul=0.01)
    path = tmp_path / "tf.pkl"
    with fake_official_packages(tmp_path) as fake:
        def tf_generator(net):
            mapping, synthesis, top = tf_layout_generator(net)
            comps = {"mapping": fake.Network("G_mapping", "G_mapping", dict(gk, dlatent_broadcast=net.num_ws),
                                             mapping, module_src=src),
                     "synthesis": fake.Network("G_synthesis", "G_synthesis_stylegan2", gk, synthesis, module_src=src)}
            return fake.Network("G", "G_main", gk, top, comps, module_src=src)

        tf_D = fake.Network("D", "D_stylegan2", dk, tf_layout_discriminator(D), module_src=src)
        with open(path, "wb") as f:
            pickle.dump((tf_generator(G), tf_D, tf_generator(G_ema)), f, protocol=protocol)
    assert b"dnnlib.tflib.network" in path.read_bytes()

    pkl = read_official(path)
    assert pkl.source_format == "tensorflow" and set(pkl.networks) == {"G", "D", "G_ema"}
    assert any("truncation_psi" in n for n in pkl.networks["G_ema"].notes)
    z = torch.randn(4, 8)
    c = torch.eye(max(c_dim, 1))[torch.arange(4) % max(c_dim, 1)][:, :c_dim] if c_dim else None
    for name, ours in (("G_ema", G_ema), ("G", G)):
        back = load_official(path, which=name)
        assert back.cfg == ours.cfg
        for k, v in ours.state_dict().items():
            torch.testing.assert_close(back.state_dict()[k], v, rtol=0, atol=1e-6, msg=k)
        with torch.no_grad():
            torch.testing.assert_close(back(z, c, noise_mode="const"), ours(z, c, noise_mode="const"),
                                       rtol=0, atol=1e-5)
            torch.testing.assert_close(back(z, c, psi=0.5, noise_mode="const"),
                                       ours(z, c, psi=0.5, noise_mode="const"), rtol=0, atol=1e-5)
    D2 = load_official(path, which="D")
    assert D2.cfg == D.cfg
    img = torch.randn(4, 3, res, res)
    with torch.no_grad():
        torch.testing.assert_close(D2(img, c), D(img, c), rtol=0, atol=1e-5)
    assert not marker.exists() and not Path(f"{marker}.os").exists()
    assert "dnnlib" not in sys.modules


def tf_upsample_conv_2d_reference(x, w_tf, taps):
    """NumPy rendering of TF StyleGAN2's upsample_conv_2d (NCHW, factor 2, one group).

    TF flips the [kh, kw, in, out] kernel, runs conv2d_transpose (each input pixel stamps the
    kernel at stride 2, 'VALID'), then FIR-filters with gain 4 and pads (p+1)//2+1, p//2+1 where
    p = (len(taps) - 2) - (kh - 1).
    """
    n, c, h, w = x.shape
    kh = w_tf.shape[0]
    wf = w_tf[::-1, ::-1]
    y = np.zeros((n, w_tf.shape[3], (h - 1) * 2 + kh, (w - 1) * 2 + kh))
    for a in range(kh):
        for b in range(kh):
            y[:, :, a:a + 2 * h - 1:2, b:b + 2 * w - 1:2] += np.einsum("nchw,co->nohw", x, wf[a, b])
    p = (len(taps) - 2) - (kh - 1)
    p0, p1 = (p + 1) // 2 + 1, p // 2 + 1
    k = np.outer(taps, taps)
    k = (k / k.sum() * 4)[::-1, ::-1]  # upfirdn is a true convolution
    y = np.pad(y, ((0, 0), (0, 0), (p0, p1), (p0, p1)))
    out_h = y.shape[2] - k.shape[0] + 1
    return sum(y[:, :, u:u + out_h, v:v + out_h] * k[u, v] for u in range(k.shape[0]) for v in range(k.shape[1]))


def test_tf_upsampling_kernel_flip_matches_tf_semantics():
    """Conv0_up weights need the flip: TF's upsample_conv_2d == ours with the imported kernel."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 5))
    w_tf = rng.standard_normal((3, 3, 3, 4))  # asymmetric, so a wrong flip cannot pass
    ref = tf_upsample_conv_2d_reference(x, w_tf, [1, 3, 3, 1])
    w_ours = torch.from_numpy(np.ascontiguousarray(_conv_flip(w_tf)))
    ours = conv2d_resample(torch.from_numpy(x), w_ours, setup_filter([1, 3, 3, 1]).double(), up=2, padding=1,
                           flip_weight=False)  # as ModulatedConv2d(up=2) calls it
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-10)
    unflipped = conv2d_resample(torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(w_tf.transpose(3, 2, 0, 1))),
                                setup_filter([1, 3, 3, 1]).double(), up=2, padding=1, flip_weight=False)
    assert np.abs(unflipped.numpy() - ref).max() > 1e-3


# =========================================================================================
# (d) malicious pickles
# =========================================================================================

class Evil:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _payloads(marker):
    m = str(marker)
    return [
        Evil(os.system, f"touch {m}"),
        Evil(builtins.eval, f"open({m!r}, 'w').write('eval')"),
        Evil(builtins.exec, f"open({m!r}, 'w').write('exec')"),
        Evil(subprocess.Popen, ["touch", m]),
        Evil(subprocess.call, ["touch", m]),
        Evil(importlib.import_module, "os"),
        Evil(builtins.getattr, "", "join"),
        Evil(builtins.__import__, "os"),
    ]


@pytest.mark.parametrize("where", ["top", "in_official_dict", "in_storage_bytes"])
def test_malicious_pickles_refused_and_nothing_runs(tmp_path, where):
    marker = tmp_path / "pwned"
    for i, payload in enumerate(_payloads(marker)):
        if where == "top":
            obj = payload
        elif where == "in_official_dict":
            obj = {"G_ema": payload, "training_set_kwargs": {"resolution": 32}}
        else:  # hidden inside a legacy torch.save stream, where tensor storages live
            stream = b"".join(pickle.dumps(v, protocol=2) for v in
                              (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}, payload))
            obj = {"G_ema": Evil(torch.storage._load_from_bytes, stream)}
        path = tmp_path / f"evil{i}.pkl"
        path.write_bytes(pickle.dumps(obj, protocol=4))
        with pytest.raises(OfficialFormatError, match="refused to load") as info:
            load_official(path)
        fn = payload.fn
        assert f"{fn.__module__}.{fn.__qualname__}".split(".")[-1] in str(info.value)
        with pytest.raises(CheckpointError):
            stylegan.load(path)
        assert not marker.exists(), payload.fn


def test_malicious_object_inside_persistent_state(tmp_path):
    marker = tmp_path / "pwned"
    with fake_official_packages(tmp_path) as fake:
        G = official_tree(fake, {"mapping.fc0.weight": torch.zeros(2, 2)}, G_RULES, "", fake.EasyDict())
        G.sneaky = Evil(os.system, f"touch {marker}")
        data = pickle.dumps({"G_ema": G})
    path = tmp_path / "evil.pkl"
    path.write_bytes(data)
    with pytest.raises(OfficialFormatError, match="system"):
        load_official(path)
    assert not marker.exists()


# =========================================================================================
# (e) damaged, foreign and unsupported files
# =========================================================================================

@needs_fixture
def test_truncated_file(tmp_path):
    path, _, _ = write_fake_snapshot(tmp_path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 3, 40):
        bad = tmp_path / f"cut{cut}.pkl"
        bad.write_bytes(data[:cut])
        with pytest.raises(OfficialFormatError, match="truncated|damaged"):
            load_official(bad)


def test_foreign_files(tmp_path):
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(OfficialFormatError, match="not an official network pickle"):
        load_official(plain)
    counter = tmp_path / "counter.pkl"
    counter.write_bytes(pickle.dumps(collections.Counter("abc")))
    with pytest.raises(OfficialFormatError, match="collections.Counter"):
        load_official(counter)
    text = tmp_path / "text.pkl"
    text.write_text("hello")
    with pytest.raises(OfficialFormatError, match="not a pickle"):
        load_official(text)
    zipped = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, zipped)
    with pytest.raises(OfficialFormatError, match="zip"):
        load_official(zipped)
    with pytest.raises(OfficialFormatError, match="no such file"):
        load_official(tmp_path / "missing.pkl")


@needs_fixture
def test_stylegan3_pickle_loads_converts_and_matches_nvidia(tmp_path):
    """A stylegan3-repository snapshot of config T: G_ema / G load as our StyleGAN3 generator and
    reproduce NVIDIA's outputs, D is its StyleGAN2 discriminator, `stylegan convert` keeps all three."""
    from stylegan.cli import main
    from stylegan.selftest.fixture import SG3_OUTPUTS, sg3_fixture_calls, sg3_fixture_errors

    path, fx, src_marker = write_fake_sg3_snapshot(tmp_path)
    assert b"SynthesisInput" in path.read_bytes()
    G = load_official(path)
    assert G.cfg.version == 3 and G.cfg.sg3.config_name == "T" and G.num_ws == 16
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    errors = sg3_fixture_errors(sg3_fixture_calls(G, fx), fx)
    assert all(errors[k] <= 1e-4 for k in SG3_OUTPUTS if k != "out.grad_ws"), errors
    assert load_official(path, which="D").cfg.architecture == "resnet"
    G_train = load_official(path, which="G")
    assert not torch.equal(G_train.mapping.fc0.bias, G.mapping.fc0.bias)
    assert_nothing_ran(src_marker)

    dest = tmp_path / "sg3.safetensors"
    result = CliRunner().invoke(main, ["convert", str(path), str(dest)])
    assert result.exit_code == 0, result.output
    assert "stylegan3-T" in result.output
    for which in ("G_ema", "G", "D"):
        a, b = stylegan.load(dest, which=which), load_official(path, which=which)
        assert a.cfg == b.cfg
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    errors = sg3_fixture_errors(sg3_fixture_calls(stylegan.load(dest), fx), fx)
    assert all(errors[k] <= 1e-4 for k in SG3_OUTPUTS if k != "out.grad_ws"), errors
    G2 = stylegan.load(path)  # stylegan.load dispatches pickles to the same importer
    assert G2.cfg == G.cfg

    info = CliRunner().invoke(main, ["info", str(path)])
    assert info.exit_code == 0, info.output
    for word in ("StyleGAN3-T", "32x32", "num_ws 16", "L0_36_12", "cutoff", "sampling rate"):
        assert word in info.output, word
    assert_nothing_ran(src_marker)


@needs_fixture
def test_stylegan3_with_another_schedule_is_refused(tmp_path):
    """A layer whose recorded padding differs from what the kwargs give (a fork) is refused, by name."""
    def edit(name, layer):
        if name.startswith("L3_"):
            layer.padding = [v + 1 for v in layer.padding]

    path, _, src_marker = write_fake_sg3_snapshot(tmp_path, layer_edit=edit)
    with pytest.raises(OfficialFormatError, match=r"L3_36_12\.padding.*modified"):
        load_official(path)
    assert load_official(path, which="D").cfg.architecture == "resnet"
    assert_nothing_ran(src_marker)


@needs_fixture
def test_stylegan3_marker_in_a_stylegan2_tree_is_refused(tmp_path):
    """A StyleGAN2 generator tree carrying a SynthesisInput is no official network."""
    path, _, src_marker = write_fake_snapshot(tmp_path, sg3=True)
    with pytest.raises(OfficialFormatError, match="StyleGAN3 Generator does not have"):
        load_official(path)
    assert load_official(path, which="D").cfg.architecture == "resnet"
    assert_nothing_ran(src_marker)


def test_kwargs_errors_and_notes():
    base = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, mapping_kwargs={"num_layers": 2})
    cfg, notes = generator_config_from_kwargs(dict(base, channel_base=256, fused_modconv_default="inference_only",
                                                   fp16_channels_last=False))
    assert cfg.channel_base == 256 and len(notes) == 2 and any("fused_modconv_default" in n for n in notes)
    cfg2, _ = generator_config_from_kwargs(dict(base, synthesis_kwargs={"channel_base": 256, "conv_clamp": 256}))
    assert cfg2.channel_base == 256 and cfg2.conv_clamp == 256
    with pytest.raises(OfficialFormatError, match="kernel_size"):
        generator_config_from_kwargs(dict(base, kernel_size=5))
    with pytest.raises(OfficialFormatError, match="magnitude_ema_beta"):
        generator_config_from_kwargs(dict(base, magnitude_ema_beta=0.999))
    with pytest.raises(OfficialFormatError, match="activation"):
        generator_config_from_kwargs(dict(base, mapping_kwargs={"activation": "relu"}))
    with pytest.raises(OfficialFormatError, match="lack"):
        generator_config_from_kwargs({"z_dim": 8})
    dcfg, dnotes = discriminator_config_from_kwargs(dict(c_dim=0, img_resolution=16, img_channels=3,
                                                         block_kwargs={"freeze_layers": 2},
                                                         epilogue_kwargs={"mbstd_group_size": 8}))
    assert dcfg.mbstd_group_size == 8 and "freeze_layers" in dnotes[0]
    with pytest.raises(OfficialFormatError, match="unknown"):
        discriminator_config_from_kwargs(dict(c_dim=0, img_resolution=16, img_channels=3, foo=1))


@needs_fixture
def test_unused_and_missing_keys_are_named():
    tensors, meta = fixture()
    G = Generator(generator_config_from_kwargs(meta["G_kwargs"])[0])
    state = prefixed(tensors, "G.")
    del state["synthesis.b8.conv0.noise_const"]
    state["synthesis.b8.conv0.extra"] = torch.zeros(1)
    with pytest.raises(OfficialFormatError) as info:
        official_to_ours_state(state, G, "G")
    msg = str(info.value)
    assert "synthesis.b8.conv0.extra" in msg and "synthesis.b8.conv0.noise.const" in msg
    state = prefixed(tensors, "G.")
    state["mapping.fc0.weight"] = state["mapping.fc0.weight"][:, :10]
    with pytest.raises(OfficialFormatError, match="shape mismatch"):
        official_to_ours_state(state, G, "G")


# =========================================================================================
# (f) `stylegan convert`
# =========================================================================================

@needs_fixture
def test_convert_cli_roundtrip(tmp_path):
    from stylegan.cli import main

    src, tensors, src_marker = write_fake_snapshot(tmp_path)
    dest = tmp_path / "converted.safetensors"
    result = CliRunner().invoke(main, ["convert", str(src), str(dest)])
    assert result.exit_code == 0, result.output
    for word in ("G_ema", "D", "32x32", "params", "augment"):
        assert word in result.output
    ckpt = read_checkpoint(dest)
    assert set(ckpt.modules) == {"G", "D", "G_ema"}
    assert ckpt.info["augment_pipe_p"] == pytest.approx(0.25)
    assert ckpt.info["source"] == src.name and len(ckpt.info["source_sha256"]) == 64
    for which in ("G_ema", "G", "D"):
        a, b = stylegan.load(dest, which=which), load_official(src, which=which)
        assert a.cfg == b.cfg
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert_fixture_parity(stylegan.load(dest), stylegan.load(dest, which="D"), tensors)
    assert_nothing_ran(src_marker)

    again = CliRunner().invoke(main, ["convert", str(src), str(dest)])
    assert again.exit_code != 0 and "exists" in again.output
    assert CliRunner().invoke(main, ["convert", str(src), str(dest), "--force"]).exit_code == 0


def test_convert_cli_refuses_malicious(tmp_path):
    from stylegan.cli import main

    marker = tmp_path / "pwned"
    src = tmp_path / "evil.pkl"
    src.write_bytes(pickle.dumps(Evil(os.system, f"touch {marker}")))
    dest = tmp_path / "out.safetensors"
    result = CliRunner().invoke(main, ["convert", str(src), str(dest)])
    assert result.exit_code != 0 and "refused" in result.output and "Traceback" not in result.output
    assert not dest.exists() and not marker.exists()
