"""Losses and regularizers against independent closed forms; lazy-regularization Adam numbers."""
import math

import pytest
import torch
import torch.nn.functional as F

from stylegan.models import Generator, GeneratorConfig, MappingConfig
from stylegan.training.config import LossConfig
from stylegan.training.losses import (PhaseContext, RoundInputs, StyleGANLoss, d_logistic_loss,
                                      g_nonsaturating_loss, gradient_penalty, lazy_regularization_adam, path_lengths,
                                      pl_noise_like, r1_penalty, wgan_d_loss, wgan_g_loss)


def test_logistic_losses_match_log_sigmoid():
    x = torch.linspace(-5, 5, 11).reshape(-1, 1)
    torch.testing.assert_close(g_nonsaturating_loss(x), -torch.log(torch.sigmoid(x)))
    fake, real = d_logistic_loss(real_logits=x, fake_logits=-x)
    torch.testing.assert_close(fake, -torch.log(1 - torch.sigmoid(-x)))  # -log(1 - D(G(z)))
    torch.testing.assert_close(real, -torch.log(torch.sigmoid(x)))  # -log D(x)


def test_wgan_losses():
    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [3.0]])
    torch.testing.assert_close(wgan_g_loss(fake), -fake)
    torch.testing.assert_close(wgan_d_loss(real, fake, 0.001), fake - real + 0.001 * real ** 2)


def test_r1_linear_discriminator_closed_form():
    """D(x) = <a, x>: grad_x D = a, so R1 = |a|^2 for every sample."""
    a = torch.randn(1, 3, 4, 4)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    logits = (x * a).flatten(1).sum(1, keepdim=True)
    torch.testing.assert_close(r1_penalty(logits, x), a.square().sum().expand(5))


def test_r1_quadratic_discriminator_closed_form_and_param_gradient():
    """D(x) = 1/2 sum(q x^2): grad_x D = q x, R1 = |q x|^2; d R1 / d q = 2 q x^2 (double backward)."""
    q = torch.randn(1, 2, 3, 3, requires_grad=True)
    x = torch.randn(4, 2, 3, 3, requires_grad=True)
    logits = 0.5 * (q * x.square()).flatten(1).sum(1, keepdim=True)
    pen = r1_penalty(logits, x)
    torch.testing.assert_close(pen, (q * x).square().flatten(1).sum(1))
    (gq,) = torch.autograd.grad(pen.sum(), q)
    torch.testing.assert_close(gq, (2 * q * x.square()).sum(0, keepdim=True))


def test_gradient_penalty_closed_form():
    w = torch.randn(1, 1, 4, 4)
    x = torch.randn(3, 1, 4, 4, requires_grad=True)
    logits = (x * w).flatten(1).sum(1, keepdim=True)
    expect = (w.norm() - 1.0) ** 2
    torch.testing.assert_close(gradient_penalty(logits, x, 1.0), expect.expand(3), rtol=1e-5, atol=1e-6)


def test_path_length_for_generator_linear_in_w():
    """img = sum_l A_l w_l: J_l^T y = A_l^T y, len = sqrt(mean_l |A_l^T y|^2)."""
    n, L, C, H, W = 3, 4, 5, 2, 3
    A = torch.randn(L, C, H * W)
    ws = torch.randn(n, L, C, requires_grad=True)
    img = torch.einsum("nlc,lcp->np", ws, A).reshape(n, 1, H, W)
    y = pl_noise_like(img)
    expect = torch.einsum("lcp,np->nlc", A, y.reshape(n, H * W)).square().sum(2).mean(1).sqrt()
    torch.testing.assert_close(path_lengths(img, ws, y), expect)


def test_pl_noise_scale():
    y = pl_noise_like(torch.zeros(64, 3, 16, 16))
    assert abs(float(y.std()) * 16 - 1) < 0.05


@pytest.mark.parametrize("interval, lr_ratio", [(16, 16 / 17), (4, 4 / 5)])
def test_lazy_regularization_adam(interval, lr_ratio):
    lr, betas = lazy_regularization_adam(0.002, (0.0, 0.99), interval)
    assert lr == pytest.approx(0.002 * lr_ratio)
    assert betas == pytest.approx((0.0, 0.99 ** lr_ratio))
    if interval == 16:
        assert lr == pytest.approx(0.0018823529)
        assert betas[1] == pytest.approx(0.9905855)
    assert lazy_regularization_adam(0.002, (0.0, 0.99), 0) == (0.002, (0.0, 0.99))
    assert lazy_regularization_adam(0.002, (0.0, 0.99), None) == (0.002, (0.0, 0.99))


def _tiny_G():
    return Generator(GeneratorConfig(z_dim=8, w_dim=8, img_resolution=16, img_channels=1,
                                     mapping=MappingConfig(num_layers=1), channel_base=64, channel_max=8))


@pytest.mark.parametrize("prob", [0.0, 1.0])
def test_style_mixing_crossover(prob):
    G = _tiny_G()
    loss = StyleGANLoss(G, None, LossConfig(style_mixing_prob=prob))
    torch.manual_seed(1)
    z = torch.randn(32, 8)
    with torch.no_grad():
        _, ws = loss.run_G(z, None)
        w1 = G.mapping(z)
    L = ws.shape[1]
    crossovers = set()
    for i in range(32):
        same = (ws[i] == w1[i]).all(dim=1)  # [L] rows taken from the first latent
        k = int(same.sum())
        assert same[:k].all() and not same[k:].any(), "styles from z1 must form a prefix"
        crossovers.add(k)
    if prob == 0:
        assert crossovers == {L}
    else:
        assert crossovers <= set(range(1, L)) and len(crossovers) > 1


def test_mixing_respects_active_styles():
    G = _tiny_G()
    loss = StyleGANLoss(G, None, LossConfig(style_mixing_prob=1.0))
    with torch.no_grad():  # progressive growing at 4x4: crossover in [1, 2)
        _, ws = loss.run_G(torch.randn(16, 8), None, mixing_num_ws=2)
        w1 = G.mapping(torch.zeros(1, 8))  # only for the shape
    assert w1.shape[1] > 2
    assert (ws[:, 0] != ws[:, 1]).any(dim=1).all()  # crossover exactly 1 for every sample
    assert (ws[:, 1:] == ws[:, 1:2]).all()


def test_softplus_identities():
    x = torch.randn(100)
    torch.testing.assert_close(F.softplus(-x) - F.softplus(x), -x)
    assert math.isclose(float(F.softplus(torch.tensor(0.0))), math.log(2), rel_tol=1e-6)


def _greg_grads(loss, G, z, pl_mean):
    G.requires_grad_(True)
    for p in G.parameters():
        p.grad = None
    torch.manual_seed(7)  # the loss draws from the RNG as it stands (the stepper seeds it per round)
    loss.accumulate_gradients("Greg", RoundInputs(None, None, z, None),
                              PhaseContext(gain=1.0, pl_mean=torch.tensor(pl_mean)))
    return {n: p.grad.clone() for n, p in G.named_parameters() if p.grad is not None}


def _official_greg_grads(loss, G, z, pl_mean, *, through_mean=True):
    """Path length as NVIDIA's loss writes it: a = lerp(pl_mean, mean(lengths), decay), penalty
    (lengths - a)^2 with the gradient flowing through a (written here independently)."""
    cfg = loss.cfg
    torch.manual_seed(7)  # the same draws as the loss
    n = z.shape[0] // cfg.pl_batch_shrink
    img, ws = loss.run_G(z[:n], None)
    lengths = path_lengths(img, ws, pl_noise_like(img))
    p = torch.tensor(pl_mean)
    a = p + cfg.pl_decay * (lengths.mean() - p) if through_mean else p
    total = (img[:, 0, 0, 0] * 0 + (lengths - a).square() * cfg.pl_weight).mean()
    named = [(k, v) for k, v in G.named_parameters()]
    grads = torch.autograd.grad(total, [v for _, v in named], allow_unused=True)
    return {k: g for (k, _), g in zip(named, grads) if g is not None}


@pytest.mark.parametrize("pl_mean", [0.0, 0.4])
def test_path_length_gradient_is_the_official_one(pl_mean):
    G = _tiny_G()
    loss = StyleGANLoss(G, None, LossConfig(pl_weight=2.0, pl_decay=0.3, style_mixing_prob=0.9))
    z = torch.randn(8, 8)
    ours = _greg_grads(loss, G, z, pl_mean)
    ref = _official_greg_grads(loss, G, z, pl_mean)
    assert ours.keys() == ref.keys()
    for k in ref:
        torch.testing.assert_close(ours[k], ref[k], rtol=1e-5, atol=1e-7, msg=k)
    # The term through the running mean matters: without it the gradients differ.
    plain = _official_greg_grads(loss, G, z, pl_mean, through_mean=False)
    assert any(not torch.allclose(ours[k], plain[k], rtol=1e-3, atol=0) for k in ref)
