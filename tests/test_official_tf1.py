"""TensorFlow StyleGAN (v1) pickles: safe import into our StyleGAN v1 networks, numerically faithful.

No official v1 pickle can be downloaded here. Two independent checks stand in for one:

1. A NumPy model of NVIDIA's TF StyleGAN v1 graph (`networks_stylegan.py`: G_style / G_mapping /
   G_synthesis with the 'linear' structure, D_basic, and the tflib ops they use: get_weight,
   conv2d 'SAME', the fused `upscale2d_conv2d` (conv2d_transpose) and `conv2d_downscale2d`,
   blur2d, upscale2d / downscale2d, instance / pixel norm, style_mod, apply_noise, minibatch
   stddev, lerp_clip), written from their definitions, evaluated on random variables in the TF
   layout. The same variables are pickled in the official (G, D, Gs) form and imported; our
   modules must reproduce the NumPy outputs. This is what guards the real-file case.
2. A round trip: our own random v1 networks -> TF layout by an inverse transform written here ->
   pickle -> importer -> identical tensors and outputs.

Pickles are written with the throwaway `dnnlib` package of tests/test_official.py, removed before
loading, so the loader never sees it.
"""
import math
import os
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import stylegan
from stylegan.io.checkpoint import read_checkpoint
from stylegan.io.official import OfficialFormatError, convert_official, load_official, read_official
from stylegan.io.official.records import TFNetwork
from stylegan.io.official.tf1 import tf1_discriminator_config, tf1_generator_config, tf1_generator_sources
from stylegan.models import DiscriminatorConfig, Generator, GeneratorConfig, MappingConfig, build_discriminator
from stylegan.models.config import StyleGAN1Options
from stylegan.models.stylegan1 import V1Conv
from stylegan.training.paper_presets import sg1_config
from stylegan.training.presets import DataShape
from test_official import Evil, fake_official_packages, module_src_with_side_effect

SQRT2 = math.sqrt(2.0)

# =========================================================================================
# NumPy model of TF StyleGAN v1 (float64, NCHW)
# =========================================================================================


def tf_same_pads(size, k, stride):
    """TF 'SAME': output ceil(size / stride), padding split with the extra pixel at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def tf_conv2d(x, w, stride=1):
    """tf.nn.conv2d(x, w, strides=[1, 1, s, s], padding='SAME', data_format='NCHW'): cross-correlation.

    x [N, C, H, W], w [kh, kw, in, out].
    """
    n, _, h, wd = x.shape
    kh, kw = w.shape[:2]
    (pt, pb), (pl, pr) = tf_same_pads(h, kh, stride), tf_same_pads(wd, kw, stride)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh, ow = -(-h // stride), -(-wd // stride)
    out = np.zeros((n, w.shape[3], oh, ow))
    for a in range(kh):
        for b in range(kw):
            patch = xp[:, :, a:a + stride * (oh - 1) + 1:stride, b:b + stride * (ow - 1) + 1:stride]
            out += np.einsum("nchw,co->nohw", patch, w[a, b])
    return out


def tf_conv2d_transpose(x, w, out_hw, stride):
    """tf.nn.conv2d_transpose(x, w, [N, out, H, W], strides, 'SAME'): the adjoint (gradient) of tf_conv2d.

    w [kh, kw, out, in]: every input pixel stamps the kernel into the output at stride `stride`,
    offset by the forward conv's 'SAME' padding.
    """
    n, _, h, wd = x.shape
    kh, kw = w.shape[:2]
    H, W = out_hw
    (pt, pb), (pl, pr) = tf_same_pads(H, kh, stride), tf_same_pads(W, kw, stride)
    buf = np.zeros((n, w.shape[2], H + pt + pb, W + pl + pr))
    for a in range(kh):
        for b in range(kw):
            buf[:, :, a:a + stride * (h - 1) + 1:stride, b:b + stride * (wd - 1) + 1:stride] += \
                np.einsum("nchw,oc->nohw", x, w[a, b])
    return buf[:, :, pt:pt + H, pl:pl + W]


def tf_depthwise(x, f, stride=1):
    """tf.nn.depthwise_conv2d with the same 2-D filter f for every channel, 'SAME'."""
    n, c, h, wd = x.shape
    kh, kw = f.shape
    (pt, pb), (pl, pr) = tf_same_pads(h, kh, stride), tf_same_pads(wd, kw, stride)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh, ow = -(-h // stride), -(-wd // stride)
    out = np.zeros((n, c, oh, ow))
    for a in range(kh):
        for b in range(kw):
            out += xp[:, :, a:a + stride * (oh - 1) + 1:stride, b:b + stride * (ow - 1) + 1:stride] * f[a, b]
    return out


def tf_blur2d(x, f, normalize=True, stride=1):
    f = np.asarray(f, dtype=np.float64)
    if f.ndim == 1:
        f = f[:, None] * f[None, :]
    if normalize:
        f = f / f.sum()
    if f.shape == (1, 1) and f[0, 0] == 1:
        return x
    return tf_depthwise(x, f, stride)


def tf_upscale2d(x, factor=2):
    return x.repeat(factor, axis=2).repeat(factor, axis=3)


def tf_downscale2d(x, factor=2):
    return tf_blur2d(x, [1 / factor] * factor, normalize=False, stride=factor)


def tf_get_weight(v, gain, lrmul=1.0):
    """get_weight(use_wscale=True): the variable times he_std * lrmul."""
    fan_in = np.prod(v.shape[:-1])
    return np.asarray(v, np.float64) * (gain / np.sqrt(fan_in)) * lrmul


def tf_dense(x, v, gain, lrmul=1.0):
    return x.reshape(x.shape[0], -1) @ tf_get_weight(v, gain, lrmul)


def tf_lrelu(x):
    return np.where(x >= 0, x, 0.2 * x)


def tf_bias(x, b, lrmul=1.0):
    b = np.asarray(b, np.float64) * lrmul
    return x + (b.reshape(1, -1, 1, 1) if x.ndim == 4 else b)


def tf_upscale2d_conv2d(x, v, fused_scale, gain=SQRT2):
    if fused_scale == "auto":
        fused_scale = min(x.shape[2:]) * 2 >= 128
    w = tf_get_weight(v, gain)
    if not fused_scale:
        return tf_conv2d(tf_upscale2d(x), w)
    w = w.transpose(0, 1, 3, 2)  # [k, k, out, in]
    w = np.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
    w = w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]
    return tf_conv2d_transpose(x, w, (x.shape[2] * 2, x.shape[3] * 2), 2)


def tf_conv2d_downscale2d(x, v, fused_scale, gain=SQRT2):
    if fused_scale == "auto":
        fused_scale = min(x.shape[2:]) >= 128
    w = tf_get_weight(v, gain)
    if not fused_scale:
        return tf_downscale2d(tf_conv2d(x, w))
    w = np.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
    w = (w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]) * 0.25
    return tf_conv2d(x, w, stride=2)


def tf_pixel_norm(x):
    return x / np.sqrt(np.mean(x ** 2, axis=1, keepdims=True) + 1e-8)


def tf_instance_norm(x):
    x = x - x.mean(axis=(2, 3), keepdims=True)
    return x / np.sqrt(np.mean(x ** 2, axis=(2, 3), keepdims=True) + 1e-8)


def tf_lerp_clip(a, b, t):
    return a + (b - a) * np.clip(t, 0.0, 1.0)


def tf_minibatch_stddev(x, group_size, num_features):
    g = min(group_size, x.shape[0])
    n, c, h, w = x.shape
    y = x.reshape(g, -1, num_features, c // num_features, h, w)
    y = y - y.mean(axis=0, keepdims=True)
    y = np.sqrt(np.mean(y ** 2, axis=0) + 1e-8)
    y = y.mean(axis=(2, 3, 4), keepdims=True).mean(axis=2)  # [M, n, 1, 1]
    y = np.tile(y, (g, 1, h, w))
    return np.concatenate([x, y], axis=1)


def nf(K, stage):
    return min(int(K["fmap_base"] / 2.0 ** stage), K["fmap_max"])


def tf_mapping(V, K, z):
    x = tf_pixel_norm(np.asarray(z, np.float64))
    for i in range(K["mapping_layers"]):
        x = tf_dense(x, V[f"mapping/Dense{i}/weight"], SQRT2, K["mapping_lrmul"])
        x = tf_lrelu(tf_bias(x, V[f"mapping/Dense{i}/bias"], K["mapping_lrmul"]))
    return x


def tf_synthesis(V, K, dlatents, lod):
    S = lambda name: np.asarray(V[f"synthesis/{name}"], np.float64)  # noqa: E731
    log2 = int(np.log2(K["resolution"]))
    n = dlatents.shape[0]

    def epilogue(x, scope, idx):
        if K["use_noise"]:
            x = x + S(f"noise{idx}") * S(f"{scope}/Noise/weight").reshape(1, -1, 1, 1)
        x = tf_lrelu(tf_bias(x, S(f"{scope}/bias")))
        if K["use_pixel_norm"]:
            x = tf_pixel_norm(x)
        if K["use_instance_norm"]:
            x = tf_instance_norm(x)
        if K["use_styles"]:
            style = tf_bias(tf_dense(dlatents[:, idx], S(f"{scope}/StyleMod/weight"), 1.0), S(f"{scope}/StyleMod/bias"))
            style = style.reshape(n, 2, x.shape[1], 1, 1)
            x = x * (style[:, 0] + 1) + style[:, 1]
        return x

    def blur(x):
        return tf_blur2d(x, K["blur_filter"]) if K["blur_filter"] else x

    if K["const_input_layer"]:
        x = epilogue(np.tile(S("4x4/Const/const"), (n, 1, 1, 1)), "4x4/Const", 0)
    else:
        x = tf_dense(dlatents[:, 0], S("4x4/Dense/weight"), SQRT2 / 4).reshape(n, nf(K, 1), 4, 4)
        x = epilogue(x, "4x4/Dense", 0)
    x = epilogue(tf_conv2d(x, tf_get_weight(S("4x4/Conv/weight"), SQRT2)), "4x4/Conv", 1)

    def block(res, x):
        s = f"{2 ** res}x{2 ** res}"
        x = epilogue(blur(tf_upscale2d_conv2d(x, S(f"{s}/Conv0_up/weight"), K["fused_scale"])), f"{s}/Conv0_up",
                     res * 2 - 4)
        return epilogue(tf_conv2d(x, tf_get_weight(S(f"{s}/Conv1/weight"), SQRT2)), f"{s}/Conv1", res * 2 - 3)

    def torgb(res, x):
        s = f"ToRGB_lod{log2 - res}"
        return tf_bias(tf_conv2d(x, tf_get_weight(S(f"{s}/weight"), 1.0)), S(f"{s}/bias"))

    images = torgb(2, x)  # structure='linear'
    for res in range(3, log2 + 1):
        x = block(res, x)
        images = tf_lerp_clip(torgb(res, x), tf_upscale2d(images), lod - (log2 - res))
    return images


def tf_G_style(V, K, z, psi=None, cutoff=None, lod=None):
    """Gs.run(z, None, truncation_psi=psi, truncation_cutoff=cutoff, randomize_noise=False)."""
    log2 = int(np.log2(K["resolution"]))
    num_styles = 2 * log2 - 2 if K["use_styles"] else 1
    dl = np.repeat(tf_mapping(V, K, z)[:, None], num_styles, axis=1)
    if psi is not None and cutoff is not None:
        coefs = np.where(np.arange(num_styles)[None, :, None] < cutoff, psi, 1.0)
        avg = np.asarray(V["dlatent_avg"], np.float64)
        dl = avg + (dl - avg) * coefs
    return tf_synthesis(V, K, dl, float(V["lod"]) if lod is None else lod)


def tf_D_basic(V, K, images, lod=None):
    lod = float(V["lod"]) if lod is None else lod
    log2 = int(np.log2(K["resolution"]))
    P = lambda name: np.asarray(V[name], np.float64)  # noqa: E731

    def blur(x):
        return tf_blur2d(x, K["blur_filter"]) if K["blur_filter"] else x

    def fromrgb(x, res):
        s = f"FromRGB_lod{log2 - res}"
        return tf_lrelu(tf_bias(tf_conv2d(x, tf_get_weight(P(f"{s}/weight"), SQRT2)), P(f"{s}/bias")))

    def block(x, res):
        s = f"{2 ** res}x{2 ** res}"
        if res >= 3:
            x = tf_lrelu(tf_bias(tf_conv2d(x, tf_get_weight(P(f"{s}/Conv0/weight"), SQRT2)), P(f"{s}/Conv0/bias")))
            x = tf_conv2d_downscale2d(blur(x), P(f"{s}/Conv1_down/weight"), K["fused_scale"])
            return tf_lrelu(tf_bias(x, P(f"{s}/Conv1_down/bias")))
        if K["mbstd_group_size"] > 1:
            x = tf_minibatch_stddev(x, K["mbstd_group_size"], K["mbstd_num_features"])
        x = tf_lrelu(tf_bias(tf_conv2d(x, tf_get_weight(P("4x4/Conv/weight"), SQRT2)), P("4x4/Conv/bias")))
        x = tf_lrelu(tf_bias(tf_dense(x, P("4x4/Dense0/weight"), SQRT2), P("4x4/Dense0/bias")))
        return tf_bias(tf_dense(x, P("4x4/Dense1/weight"), 1.0), P("4x4/Dense1/bias"))

    img = np.asarray(images, np.float64)  # structure='linear'
    x = fromrgb(img, log2)
    for res in range(log2, 2, -1):
        x = block(x, res)
        img = tf_downscale2d(img)
        x = tf_lerp_clip(x, fromrgb(img, res - 1), lod - (log2 - res))
    return block(x, 2)


# =========================================================================================
# TF variables, in the layout and names networks_stylegan.py creates
# =========================================================================================

G_DEFAULTS = dict(latent_size=512, label_size=0, dlatent_size=512, mapping_layers=8, mapping_fmaps=512,
                  mapping_lrmul=0.01, num_channels=3, resolution=1024, fmap_base=8192, fmap_max=512, use_styles=True,
                  const_input_layer=True, use_noise=True, use_pixel_norm=False, use_instance_norm=True,
                  fused_scale="auto", blur_filter=[1, 2, 1], truncation_psi=0.7, truncation_cutoff=8)
D_DEFAULTS = dict(num_channels=1, resolution=32, label_size=0, fmap_base=8192, fmap_max=512, mbstd_group_size=4,
                  mbstd_num_features=1, fused_scale="auto", blur_filter=[1, 2, 1])


def tf1_generator_variables(K, rng, lod=0.0):
    """(mapping, synthesis, top) variable lists of G_style with random values."""
    f32 = lambda *shape, s=1.0, m=0.0: (m + s * rng.standard_normal(shape)).astype(np.float32)  # noqa: E731
    log2 = int(np.log2(K["resolution"]))
    mapping = []
    for i in range(K["mapping_layers"]):
        fin = K["latent_size"] if i == 0 else K["mapping_fmaps"]
        fout = K["dlatent_size"] if i == K["mapping_layers"] - 1 else K["mapping_fmaps"]
        lrmul = K["mapping_lrmul"]
        mapping += [(f"Dense{i}/weight", f32(fin, fout, s=1 / lrmul)), (f"Dense{i}/bias", f32(fout, s=0.5 / lrmul))]
    syn = [("lod", np.float32(lod))]
    num_layers = 2 * log2 - 2
    if K["use_noise"]:
        syn += [(f"noise{i}", f32(1, 1, 2 ** (i // 2 + 2), 2 ** (i // 2 + 2))) for i in range(num_layers)]

    def epi(scope, c):
        out = [(f"{scope}/Noise/weight", f32(c, s=0.3))] if K["use_noise"] else []
        out.append((f"{scope}/bias", f32(c, s=0.5)))
        if K["use_styles"]:
            out += [(f"{scope}/StyleMod/weight", f32(K["dlatent_size"], 2 * c)),
                    (f"{scope}/StyleMod/bias", f32(2 * c, s=0.3))]
        return out

    c1 = nf(K, 1)
    if K["const_input_layer"]:
        syn += [("4x4/Const/const", f32(1, c1, 4, 4, s=0.3, m=1.0))] + epi("4x4/Const", c1)
    else:
        syn += [("4x4/Dense/weight", f32(K["dlatent_size"], c1 * 16))] + epi("4x4/Dense", c1)
    syn += [("4x4/Conv/weight", f32(3, 3, c1, c1))] + epi("4x4/Conv", c1)
    for res in range(3, log2 + 1):
        s = f"{2 ** res}x{2 ** res}"
        syn += [(f"{s}/Conv0_up/weight", f32(3, 3, nf(K, res - 2), nf(K, res - 1)))]
        syn += epi(f"{s}/Conv0_up", nf(K, res - 1))
        syn += [(f"{s}/Conv1/weight", f32(3, 3, nf(K, res - 1), nf(K, res - 1)))] + epi(f"{s}/Conv1", nf(K, res - 1))
    for res in range(2, log2 + 1):
        s = f"ToRGB_lod{log2 - res}"
        syn += [(f"{s}/weight", f32(1, 1, nf(K, res - 1), K["num_channels"])),
                (f"{s}/bias", f32(K["num_channels"], s=0.3))]
    top = [("lod", np.float32(lod)), ("dlatent_avg", f32(K["dlatent_size"], s=0.5))]
    return mapping, syn, top


def tf1_discriminator_variables(K, rng, lod=0.0):
    f32 = lambda *shape, s=1.0: (s * rng.standard_normal(shape)).astype(np.float32)  # noqa: E731
    log2 = int(np.log2(K["resolution"]))
    out = [("lod", np.float32(lod))]

    def layer(scope, shape):
        out.extend([(f"{scope}/weight", f32(*shape)), (f"{scope}/bias", f32(shape[-1], s=0.3))])

    for res in range(log2, 1, -1):
        layer(f"FromRGB_lod{log2 - res}", (1, 1, K["num_channels"], nf(K, res - 1)))
    for res in range(log2, 2, -1):
        s = f"{2 ** res}x{2 ** res}"
        layer(f"{s}/Conv0", (3, 3, nf(K, res - 1), nf(K, res - 1)))
        layer(f"{s}/Conv1_down", (3, 3, nf(K, res - 1), nf(K, res - 2)))
    mb = K["mbstd_num_features"] if K["mbstd_group_size"] > 1 else 0
    layer("4x4/Conv", (3, 3, nf(K, 1) + mb, nf(K, 1)))
    layer("4x4/Dense0", (nf(K, 1) * 16, nf(K, 0)))
    layer("4x4/Dense1", (nf(K, 0), max(K["label_size"], 1)))
    return out


def flat_generator(mapping, syn, top):
    return {**{f"mapping/{k}": v for k, v in mapping}, **{f"synthesis/{k}": v for k, v in syn}, **dict(top)}


def write_tf1_pickle(tmp_path, g_kwargs, d_kwargs, g_vars, d_vars, gs_vars=None, name="karras2019stylegan.pkl",
                     protocol=3, edit=None):
    """Pickle (G, D, Gs) as the official training loop does. Returns (path, marker of build_module_src)."""
    marker = tmp_path / "build_module_src_ran"
    src = module_src_with_side_effect(marker, ("G_style", "G_mapping", "G_synthesis", "D_basic"))
    path = tmp_path / name
    with fake_official_packages(tmp_path) as fake:
        def generator(variables):
            mapping, syn, top = variables
            num_layers = 2 * int(np.log2(g_kwargs.get("resolution", 1024))) - 2
            comps = {"synthesis": fake.Network("G_synthesis", "G_synthesis", g_kwargs, syn, module_src=src),
                     "mapping": fake.Network("G_mapping", "G_mapping",
                                             dict(g_kwargs, dlatent_broadcast=num_layers
                                                  if g_kwargs.get("use_styles", True) else 1), mapping,
                                             module_src=src)}
            return fake.Network("G", "G_style", g_kwargs, top, comps, module_src=src)

        nets = [generator(g_vars), fake.Network("D", "D_basic", d_kwargs, d_vars, module_src=src),
                generator(gs_vars or g_vars)]
        if edit is not None:
            edit(fake, nets)
        with open(path, "wb") as f:
            pickle.dump(tuple(nets), f, protocol=protocol)
    return path, marker


def assert_nothing_ran(marker):
    assert not marker.exists() and not Path(f"{marker}.os").exists()
    assert "dnnlib" not in sys.modules and "torch_utils" not in sys.modules


def max_err(ours, ref):
    """Max abs error relative to the output's range (random weights give images of range ~10-40)."""
    return float(np.abs(ours.detach().double().numpy() - ref).max() / max(1.0, np.abs(ref).max()))


# =========================================================================================
# (1) the TF ops: fused resampling convs
# =========================================================================================

def test_numpy_conv2d_transpose_is_the_adjoint_of_conv2d():
    """The NumPy tf_conv2d_transpose obeys TF's definition: the gradient (adjoint) of conv2d."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 4, 3, 5))
    for size in (8, 10):
        u, v = rng.standard_normal((2, 3, size, size)), rng.standard_normal((2, 5, size // 2, size // 2))
        lhs = np.sum(tf_conv2d(u, w, stride=2) * v)
        rhs = np.sum(u * tf_conv2d_transpose(v, w, (size, size), 2))
        assert lhs == pytest.approx(rhs, rel=1e-12)


def _importer_transform(res, fused_scale):
    cfg = GeneratorConfig(version=1, growing=True, architecture="orig", img_resolution=max(res, 8),
                          resample_filter=(1, 2, 1), channel_base=64, channel_max=8)
    name, fn = tf1_generator_sources(cfg, fused_scale)(f"synthesis.b{res}.conv0.weight")
    assert name == f"synthesis/{res}x{res}/Conv0_up/weight"
    return fn


def test_fused_upscale2d_conv2d_matches_ours_with_flipped_kernel():
    """TF's fused upscale2d_conv2d (conv2d_transpose) == nearest 2x + conv with the flipped kernel."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 6, 6))
    v = rng.standard_normal((3, 3, 3, 4))  # asymmetric: a wrong flip cannot pass
    fused_ref = tf_upscale2d_conv2d(x, v, fused_scale=True)
    plain_ref = tf_upscale2d_conv2d(x, v, fused_scale=False)
    assert np.abs(fused_ref - plain_ref).max() > 1e-2  # the two TF paths differ for one kernel

    def ours(fn):
        conv = V1Conv(3, 4, 3, bias=False, up=True).double()
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(fn(v))))
            return conv(torch.from_numpy(x)).numpy()

    # The importer picks the flip for fused layers only: 'auto' fuses from 128 px, True / False force it.
    for res, fused_scale, ref in ((128, "auto", fused_ref), (64, "auto", plain_ref), (16, True, fused_ref),
                                  (256, False, plain_ref)):
        np.testing.assert_allclose(ours(_importer_transform(res, fused_scale)), ref, atol=1e-12)
    wrong = ours(_importer_transform(64, "auto"))  # the unflipped kernel on the fused TF layer
    assert np.abs(wrong - fused_ref).max() > 1e-2


def test_fused_conv2d_downscale2d_matches_ours_unflipped():
    """TF's fused conv2d_downscale2d (4x4 kernel, stride 2) == conv then 2x2 average, same kernel."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 8, 8))
    v = rng.standard_normal((3, 3, 3, 4))
    fused_ref = tf_conv2d_downscale2d(x, v, fused_scale=True)
    np.testing.assert_allclose(fused_ref, tf_conv2d_downscale2d(x, v, fused_scale=False), atol=1e-12)
    conv = V1Conv(3, 4, 3, bias=False, down=True).double()
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(v.transpose(3, 2, 0, 1))))
        np.testing.assert_allclose(conv(torch.from_numpy(x)).numpy(), fused_ref, atol=1e-12)
        conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(v[::-1, ::-1].transpose(3, 2, 0, 1))))
        assert np.abs(conv(torch.from_numpy(x)).numpy() - fused_ref).max() > 1e-2


# =========================================================================================
# (2) whole networks against the NumPy model of TF StyleGAN v1
# =========================================================================================

NUMPY_CASES = {
    # FFHQ layout scaled down: fused_scale 'auto' -> Conv0_up / Conv1_down fused at 128 only.
    "auto-128": (dict(resolution=128, latent_size=8, dlatent_size=8, mapping_layers=3, mapping_fmaps=6,
                      fmap_base=256, fmap_max=8, num_channels=3),
                 dict(resolution=128, fmap_base=256, fmap_max=8, num_channels=3, mbstd_group_size=2),
                 0.0),
    # every resampling layer fused, at a fractional level of detail stored in the file.
    "fused-16": (dict(resolution=16, latent_size=8, dlatent_size=10, mapping_layers=2, mapping_fmaps=10,
                      fmap_base=32, fmap_max=8, fused_scale=True, num_channels=3, truncation_psi=0.5,
                      truncation_cutoff=3),
                 dict(resolution=16, fmap_base=32, fmap_max=8, fused_scale=True, num_channels=3,
                      mbstd_group_size=2, mbstd_num_features=2),
                 1.25),
    # Progressive-GAN-like switches (configs A/B): dense input, pixel norm, no styles / noise / blur.
    "pggan-16": (dict(resolution=16, latent_size=8, dlatent_size=8, mapping_layers=0, fmap_base=32, fmap_max=8,
                      const_input_layer=False, use_styles=False, use_noise=False, use_pixel_norm=True,
                      use_instance_norm=False, blur_filter=None, fused_scale=False, num_channels=3),
                 dict(resolution=16, fmap_base=32, fmap_max=8, blur_filter=None, mbstd_group_size=0,
                      num_channels=3),
                 0.5),
}


@pytest.mark.parametrize("case", list(NUMPY_CASES))
def test_imported_networks_match_numpy_model_of_tf(tmp_path, case):
    g_over, d_over, lod = NUMPY_CASES[case]
    GK, DK = dict(G_DEFAULTS, **g_over), dict(D_DEFAULTS, **d_over)
    rng = np.random.default_rng(3)
    g_vars = tf1_generator_variables(GK, rng, lod=lod)
    d_vars = tf1_discriminator_variables(DK, rng, lod=lod)
    path, marker = write_tf1_pickle(tmp_path, g_over, d_over, g_vars, d_vars)
    GV, DV = flat_generator(*g_vars), dict(d_vars)

    G = load_official(path)
    D = load_official(path, which="D")
    assert float(G.synthesis.lod) == lod and float(D.lod) == lod
    z = rng.standard_normal((4, GK["latent_size"])).astype(np.float32)
    img = rng.standard_normal((4, 3, GK["resolution"], GK["resolution"])).astype(np.float32)
    zt, it = torch.from_numpy(z), torch.from_numpy(img)
    psi, cutoff = GK["truncation_psi"], GK["truncation_cutoff"]
    with torch.no_grad():
        errors = {
            "mapping": max_err(G.mapping(zt)[:, 0], tf_mapping(GV, GK, z)),
            "G@file lod": max_err(G(zt, noise_mode="const"), tf_G_style(GV, GK, z)),
            "G@lod 0.6": max_err(G(zt, noise_mode="const", lod=0.6), tf_G_style(GV, GK, z, lod=0.6)),
            "G@lod 0": max_err(G(zt, noise_mode="const", lod=0), tf_G_style(GV, GK, z, lod=0.0)),
            "G truncated": max_err(G(zt, psi=psi, cutoff=cutoff, noise_mode="const"),
                                   tf_G_style(GV, GK, z, psi=psi, cutoff=cutoff)),
            "D@file lod": max_err(D(it), tf_D_basic(DV, DK, img)),
            "D@lod 0.6": max_err(D(it, lod=0.6), tf_D_basic(DV, DK, img, lod=0.6)),
            "D@lod 0": max_err(D(it, lod=0), tf_D_basic(DV, DK, img, lod=0.0)),
        }
    print(f"{case}: max error / max(1, max |output|) vs the NumPy TF model (float64):", errors)
    assert all(e < 1e-5 for e in errors.values()), errors  # float32 rounding: ~1e-6
    if case == "auto-128":  # the layers between the fused and non-fused paths really differ
        ref = tf_G_style(GV, GK, z[:1])
        GV2 = dict(GV, **{"synthesis/128x128/Conv0_up/weight": GV["synthesis/128x128/Conv0_up/weight"][::-1, ::-1]})
        assert np.abs(tf_G_style(GV2, GK, z[:1]) - ref).max() > 1e-2
    notes = read_official(path).networks["G_ema"].notes
    assert any("psi=" in n for n in notes) and any("synthesis/lod" in n for n in notes)
    assert_nothing_ran(marker)


def test_ffhq_1024_layout_every_variable_lands(tmp_path):
    """The FFHQ pickle's layout at 1024 px (dataset kwargs only; fewer channels to stay cheap)."""
    g_over = dict(resolution=1024, num_channels=3, label_size=0, fmap_base=1024, fmap_max=8, latent_size=16,
                  dlatent_size=16, mapping_fmaps=16)
    d_over = dict(resolution=1024, num_channels=3, label_size=0, fmap_base=1024, fmap_max=8)
    GK, DK = dict(G_DEFAULTS, **g_over), dict(D_DEFAULTS, **d_over)
    rng = np.random.default_rng(5)
    g_vars, d_vars = tf1_generator_variables(GK, rng), tf1_discriminator_variables(DK, rng)
    path, marker = write_tf1_pickle(tmp_path, g_over, d_over, g_vars, d_vars)
    GV, DV = flat_generator(*g_vars), dict(d_vars)
    G, D = load_official(path), load_official(path, which="D")  # every variable used, every tensor filled
    sd, dsd = G.state_dict(), D.state_dict()
    assert G.num_ws == 18 and len([k for k in GV if re.fullmatch(r"synthesis/noise\d+", k)]) == 18
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    torch.testing.assert_close(sd["synthesis.b4.torgb.weight"],
                               t(GV["synthesis/ToRGB_lod8/weight"].transpose(3, 2, 0, 1)))
    torch.testing.assert_close(sd["synthesis.b1024.epilogue1.noise.const"], t(GV["synthesis/noise17"][0, 0]))
    torch.testing.assert_close(sd["synthesis.b4.epilogue0.noise.strength"], t(GV["synthesis/4x4/Const/Noise/weight"]))
    for res, flip in ((64, False), (128, True), (1024, True)):  # fused_scale='auto' from 128 px
        w = GV[f"synthesis/{res}x{res}/Conv0_up/weight"]
        torch.testing.assert_close(sd[f"synthesis.b{res}.conv0.weight"],
                                   t((w[::-1, ::-1] if flip else w).transpose(3, 2, 0, 1)))
    torch.testing.assert_close(dsd["b1024.fromrgb.weight"], t(DV["FromRGB_lod0/weight"].transpose(3, 2, 0, 1)))
    torch.testing.assert_close(dsd["b4.fromrgb.bias"], t(DV["FromRGB_lod8/bias"]))
    torch.testing.assert_close(dsd["b1024.conv1.weight"], t(DV["1024x1024/Conv1_down/weight"].transpose(3, 2, 0, 1)))
    z = torch.randn(2, 16)
    with torch.no_grad():
        img = G(z, psi=0.7, cutoff=8)
        assert img.shape == (2, 3, 1024, 1024) and torch.isfinite(img).all()
        assert D(img).shape == (2, 1)
    assert_nothing_ran(marker)


# =========================================================================================
# (3) round trip: our v1 networks -> TF layout (independent inverse) -> importer
# =========================================================================================

def randomize_v1(module, seed, lod):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("blur_filter"):
                continue
            if name.endswith("lod"):
                t.fill_(lod)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * (0.3 if name.endswith("strength") else 1.0))
    return module.eval()


def ours_to_tf1_generator(G, fused):
    """Our v1 Generator -> TF (mapping, synthesis, top) variables, walking the TF scopes."""
    sd = {k: v.numpy().astype(np.float64) for k, v in G.state_dict().items()}
    cfg, log2 = G.cfg, int(np.log2(G.img_resolution))
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    def conv(w, flip=False):  # [out, in, kh, kw] -> [kh, kw, in, out]; fused Conv0_up kernels run backwards in TF
        w = w.transpose(2, 3, 1, 0)
        return f32(w[::-1, ::-1] if flip else w)

    mapping = []
    for i in range(cfg.mapping.num_layers):
        mapping += [(f"Dense{i}/weight", f32(sd[f"mapping.fc{i}.weight"].T)),
                    (f"Dense{i}/bias", f32(sd[f"mapping.fc{i}.bias"] * SQRT2))]  # TF v1: gain before the bias
    syn = [("lod", np.float32(7.0))]  # overwritten by G_style's own lod at every TF call
    noises = {}

    def epi(scope, ours, idx):
        out = []
        if cfg.use_noise:
            out.append((f"{scope}/Noise/weight", f32(sd[f"{ours}.noise.strength"])))
            noises[idx] = f32(sd[f"{ours}.noise.const"][None, None])
        out.append((f"{scope}/bias", f32(sd[f"{ours}.bias"])))
        if cfg.v1.use_styles:
            c = sd[f"{ours}.bias"].shape[0]
            out += [(f"{scope}/StyleMod/weight", f32(sd[f"{ours}.affine.weight"].T)),
                    (f"{scope}/StyleMod/bias", f32(sd[f"{ours}.affine.bias"] - np.r_[np.ones(c), np.zeros(c)]))]
        return out

    if cfg.v1.const_input:
        syn += [("4x4/Const/const", f32(sd["synthesis.b4.const"][None]))]
        syn += epi("4x4/Const", "synthesis.b4.epilogue0", 0)
    else:
        syn += [("4x4/Dense/weight", f32(sd["synthesis.b4.dense.weight"].T))] + \
            epi("4x4/Dense", "synthesis.b4.epilogue0", 0)
    syn += [("4x4/Conv/weight", conv(sd["synthesis.b4.conv1.weight"]))] + epi("4x4/Conv", "synthesis.b4.epilogue1", 1)
    for res in range(3, log2 + 1):
        r, b = 2 ** res, f"synthesis.b{2 ** res}"
        syn += [(f"{r}x{r}/Conv0_up/weight", conv(sd[f"{b}.conv0.weight"], flip=fused(r)))]
        syn += epi(f"{r}x{r}/Conv0_up", f"{b}.epilogue0", 2 * res - 4)
        syn += [(f"{r}x{r}/Conv1/weight", conv(sd[f"{b}.conv1.weight"]))]
        syn += epi(f"{r}x{r}/Conv1", f"{b}.epilogue1", 2 * res - 3)
    for res in range(2, log2 + 1):
        b = f"synthesis.b{2 ** res}.torgb"
        s = f"ToRGB_lod{log2 - res}"
        syn += [(f"{s}/weight", conv(sd[f"{b}.weight"])), (f"{s}/bias", f32(sd[f"{b}.bias"]))]
    syn += [(f"noise{i}", noises[i]) for i in sorted(noises)]
    top = [("lod", np.float32(sd["synthesis.lod"])), ("dlatent_avg", f32(sd["mapping.w_avg"]))]
    return mapping, syn, top


def ours_to_tf1_discriminator(D):
    sd = {k: v.numpy() for k, v in D.state_dict().items()}
    log2 = int(np.log2(D.img_resolution))
    out = [("lod", np.float32(sd["lod"]))]

    def layer(scope, ours, dense=False):
        w = sd[f"{ours}.weight"]
        out.extend([(f"{scope}/weight", np.ascontiguousarray(w.T if dense else w.transpose(2, 3, 1, 0))),
                    (f"{scope}/bias", sd[f"{ours}.bias"])])

    for res in range(log2, 1, -1):
        layer(f"FromRGB_lod{log2 - res}", f"b{2 ** res}.fromrgb")
    for res in range(log2, 2, -1):
        layer(f"{2 ** res}x{2 ** res}/Conv0", f"b{2 ** res}.conv0")
        layer(f"{2 ** res}x{2 ** res}/Conv1_down", f"b{2 ** res}.conv1")  # fused or not: never flipped
    layer("4x4/Conv", "b4.conv")
    layer("4x4/Dense0", "b4.fc", dense=True)
    layer("4x4/Dense1", "b4.out", dense=True)
    return out


ROUNDTRIP_CASES = [("auto", 32, 1.5), (True, 16, 0.0), (False, 16, 0.75)]


@pytest.mark.parametrize("fused_scale,res,lod", ROUNDTRIP_CASES)
def test_roundtrip_from_our_networks(tmp_path, fused_scale, res, lod):
    fmap_base, fmap_max = 64, 16
    opts = StyleGAN1Options()
    gcfg = GeneratorConfig(z_dim=8, w_dim=12, img_resolution=res, mapping=MappingConfig(num_layers=3), version=1,
                           architecture="orig", channel_base=2 * fmap_base, channel_max=fmap_max,
                           resample_filter=(1, 2, 1), growing=True, v1=opts)
    dcfg = DiscriminatorConfig(img_resolution=res, version=1, architecture="orig", channel_base=2 * fmap_base,
                               channel_max=fmap_max, resample_filter=(1, 2, 1), mbstd_group_size=2, growing=True)
    G, G_ema = randomize_v1(Generator(gcfg), 1, lod), randomize_v1(Generator(gcfg), 2, lod)
    D = randomize_v1(build_discriminator(dcfg), 3, lod)
    fused = (lambda r: r >= 128) if fused_scale == "auto" else (lambda r: fused_scale)
    gk = dict(num_channels=3, resolution=res, label_size=0, latent_size=8, dlatent_size=12, mapping_layers=3,
              mapping_fmaps=12, fmap_base=fmap_base, fmap_max=fmap_max, fused_scale=fused_scale)
    dk = dict(num_channels=3, resolution=res, label_size=0, fmap_base=fmap_base, fmap_max=fmap_max,
              mbstd_group_size=2, fused_scale=fused_scale)
    path, marker = write_tf1_pickle(tmp_path, gk, dk, ours_to_tf1_generator(G, fused), ours_to_tf1_discriminator(D),
                                    ours_to_tf1_generator(G_ema, fused), protocol=2)
    pkl = read_official(path)
    assert pkl.source_format == "tensorflow" and set(pkl.networks) == {"G", "D", "G_ema"}
    assert pkl.networks["G_ema"].source_class == "tensorflow G_style"
    z = torch.randn(4, 8)
    errors = {}
    for name, ours in (("G_ema", G_ema), ("G", G)):
        back = load_official(path, which=name)
        assert back.cfg == ours.cfg
        for k, v in ours.state_dict().items():
            torch.testing.assert_close(back.state_dict()[k], v, rtol=0, atol=1e-6, msg=k)
        with torch.no_grad():
            for label, kw in (("file lod", {}), ("lod 0", dict(lod=0)), ("lod 0.4", dict(lod=0.4)),
                              ("psi 0.7", dict(psi=0.7, cutoff=8)), ("psi 0.3 all", dict(psi=0.3))):
                a, b = back(z, noise_mode="const", **kw), ours(z, noise_mode="const", **kw)
                errors[f"{name} {label}"] = max_err(a, b.double().numpy())
    D2 = load_official(path, which="D")
    assert D2.cfg == D.cfg
    img = torch.randn(4, 3, res, res)
    with torch.no_grad():
        for label, kw in (("file lod", {}), ("lod 0", dict(lod=0)), ("lod 0.4", dict(lod=0.4))):
            errors[f"D {label}"] = max_err(D2(img, **kw), D(img, **kw).double().numpy())
    print(f"round trip fused_scale={fused_scale}: max error / max(1, max |output|)", errors)
    # The only differences are float32 roundings of (b * sqrt2) / sqrt2 and (b - 1) + 1 in the biases.
    assert all(e <= 5e-6 for e in errors.values()), errors
    G_loaded = stylegan.load(path)  # stylegan.load dispatches pickles to the same importer
    with torch.no_grad():
        torch.testing.assert_close(G_loaded(z), G_ema(z), rtol=0, atol=1e-5)
    assert_nothing_ran(marker)


def test_convert_v1_pickle(tmp_path):
    gcfg = GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, mapping=MappingConfig(num_layers=2), version=1,
                           architecture="orig", channel_base=32, channel_max=8, resample_filter=(1, 2, 1),
                           growing=True, v1=StyleGAN1Options())
    dcfg = DiscriminatorConfig(img_resolution=8, version=1, architecture="orig", channel_base=32, channel_max=8,
                               resample_filter=(1, 2, 1), growing=True)
    G, D = randomize_v1(Generator(gcfg), 4, 0.5), randomize_v1(build_discriminator(dcfg), 5, 0.5)
    common = dict(num_channels=3, resolution=8, label_size=0, fmap_base=16, fmap_max=8)
    path, marker = write_tf1_pickle(tmp_path, dict(common, latent_size=8, dlatent_size=8, mapping_layers=2,
                                                   mapping_fmaps=8), common,
                                    ours_to_tf1_generator(G, lambda r: False), ours_to_tf1_discriminator(D))
    dest = tmp_path / "v1.safetensors"
    summary = convert_official(path, dest)
    assert summary["source_format"] == "tensorflow" and set(summary["networks"]) == {"G", "D", "G_ema"}
    assert any("psi=0.7" in n for n in summary["notes"])
    ckpt = read_checkpoint(dest)
    assert set(ckpt.modules) == {"G", "D", "G_ema"}
    back = stylegan.load(dest)
    assert back.cfg == G.cfg and float(back.synthesis.lod) == 0.5
    z = torch.randn(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(back(z), G(z), rtol=0, atol=1e-5)
    assert_nothing_ran(marker)


# =========================================================================================
# (4) configs: the official FFHQ pickle's kwargs are our sg1-F preset
# =========================================================================================

def tf_network_record(func, static_kwargs, components=None, variables=()):
    net = TFNetwork.__new__(TFNetwork)
    net.__setstate__(dict(version=3, name=func, static_kwargs=static_kwargs, components=components or {},
                          build_module_src="", build_func_name=func, variables=list(variables)))
    return net


def test_ffhq_kwargs_give_the_sg1_F_preset():
    """karras2019stylegan-ffhq-1024x1024.pkl: G_style / D_basic with only the dataset kwargs."""
    kw = dict(num_channels=3, resolution=1024, label_size=0)
    G = tf_network_record("G_style", kw, {"mapping": tf_network_record("G_mapping", dict(kw, dlatent_broadcast=18)),
                                          "synthesis": tf_network_record("G_synthesis", kw)})
    gcfg, notes, fused = tf1_generator_config(G, {"lod": np.float32(0), "synthesis/lod": np.float32(0)})
    dcfg, _, dfused = tf1_discriminator_config(tf_network_record("D_basic", kw), {"lod": np.float32(0)})
    preset = sg1_config(DataShape(resolution=1024, channels=3), "F")
    assert gcfg == preset.G and dcfg == preset.D
    assert [gcfg.channels(2 ** i) for i in range(2, 11)] == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    assert gcfg.num_ws == 18 and fused == dfused == "auto"
    assert any("psi=0.7, cutoff=8" in n for n in notes)
    assert any("128..1024" in n and "flipped" in n for n in notes)
    # D_basic's own defaults (1 channel, 32 px) apply when the kwargs leave them out.
    dcfg32, _, _ = tf1_discriminator_config(tf_network_record("D_basic", {}), {"lod": np.float32(0)})
    assert (dcfg32.img_resolution, dcfg32.img_channels, dcfg32.channel_base) == (32, 1, 16384)


# =========================================================================================
# (5) errors: unused / missing / misshapen variables, unsupported kwargs, malicious content
# =========================================================================================

SMALL_G = dict(resolution=8, latent_size=4, dlatent_size=4, mapping_layers=1, mapping_fmaps=4, fmap_base=8,
               fmap_max=4, num_channels=3)
SMALL_D = dict(resolution=8, fmap_base=8, fmap_max=4, num_channels=3, mbstd_group_size=2)


def small_pickle(tmp_path, g_over=None, d_over=None, g_edit=None, d_edit=None, **kw):
    GK, DK = dict(G_DEFAULTS, **SMALL_G, **(g_over or {})), dict(D_DEFAULTS, **SMALL_D, **(d_over or {}))
    rng = np.random.default_rng(7)
    gk, dk = dict(SMALL_G, **(g_over or {})), dict(SMALL_D, **(d_over or {}))
    if gk.get("label_size"):
        GK["label_size"] = 0  # the variables of an unconditional network suffice for the refusal
    mapping, syn, top = tf1_generator_variables(GK, rng)
    dv = tf1_discriminator_variables(dict(DK, label_size=0), rng)
    if g_edit:
        syn = g_edit(syn)
    if d_edit:
        dv = d_edit(dv)
    return write_tf1_pickle(tmp_path, gk, dk, (mapping, syn, top), dv, **kw)


def test_unused_missing_and_misshapen_variables_are_named(tmp_path):
    extra = lambda v: v + [("8x8/Conv1/Extra/weight", np.zeros(3, np.float32))]  # noqa: E731
    drop = lambda v: [(k, a) for k, a in v if k != "8x8/Conv1/StyleMod/bias"]  # noqa: E731
    path, _ = small_pickle(tmp_path, g_edit=lambda v: drop(extra(v)))
    with pytest.raises(OfficialFormatError) as info:
        load_official(path)
    msg = str(info.value)
    assert "synthesis/8x8/Conv1/Extra/weight" in msg and "synthesis/8x8/Conv1/StyleMod/bias" in msg
    assert "not used" in msg and "not filled" in msg

    bad = lambda v: [(k, a[:, :, :, :1] if k == "8x8/Conv0/weight" else a) for k, a in v]  # noqa: E731
    path, _ = small_pickle(tmp_path, d_edit=bad)
    load_official(path)  # G still loads
    with pytest.raises(OfficialFormatError, match="shape mismatch"):
        load_official(path, which="D")
    wrong_lod = lambda v: [(k, np.float32(5) if k == "lod" else a) for k, a in v]  # noqa: E731
    path, _ = small_pickle(tmp_path, d_edit=wrong_lod)
    with pytest.raises(OfficialFormatError, match="lod=5.0 is outside"):
        load_official(path, which="D")


@pytest.mark.parametrize("g_over,d_over,which,match", [
    (dict(label_size=3), None, "G_ema", "LabelConcat"),
    (None, dict(label_size=3), "D", "LabelSwitch"),
    (dict(structure="fixed"), None, "G_ema", "structure='fixed'"),
    (dict(use_wscale=False), None, "G_ema", "use_wscale"),
    (dict(nonlinearity="relu"), None, "G_ema", "nonlinearity"),
    (dict(use_pixel_norm=True), None, "G_ema", "use_pixel_norm"),
    (dict(blur_filter=[1, 3, 3, 1]), None, "G_ema", "blur_filter"),
    (dict(fused_scale="yes"), None, "G_ema", "fused_scale"),
    (None, dict(fmap_decay=0.5), "D", "fmap_decay"),
    (dict(some_new_switch=1), None, "G_ema", "unknown TF G kwargs"),
])
def test_unsupported_kwargs_refused(tmp_path, g_over, d_over, which, match):
    path, marker = small_pickle(tmp_path, g_over, d_over)
    with pytest.raises(OfficialFormatError, match=match):
        load_official(path, which=which)
    assert_nothing_ran(marker)


def test_foreign_components_refused(tmp_path):
    def swap(fake, nets):
        nets[2].components["synthesis"].func_name = "G_synthesis_stylegan2"

    path, _ = small_pickle(tmp_path, edit=swap)
    with pytest.raises(OfficialFormatError, match="G_synthesis_stylegan2"):
        load_official(path)
    load_official(path, which="G")  # the untouched networks still load


@pytest.mark.parametrize("where", ["static_kwargs", "variables", "top"])
def test_malicious_v1_pickles_refused_and_nothing_runs(tmp_path, where):
    marker = tmp_path / "pwned"

    def plant(fake, nets):
        evil = Evil(os.system, f"touch {marker}")
        if where == "static_kwargs":
            nets[2].static_kwargs["truncation_psi"] = evil
        elif where == "variables":
            nets[1].variables.append(("4x4/Dense1/bias", evil))
        else:
            nets.append(evil)

    path, src_marker = small_pickle(tmp_path, edit=plant)
    with pytest.raises(OfficialFormatError, match="refused to load.*system"):
        load_official(path)
    assert not marker.exists()
    assert_nothing_ran(src_marker)
