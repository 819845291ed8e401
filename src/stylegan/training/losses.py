"""GAN losses and regularizers (StyleGAN2 Sec. 3.1-3.2 and App. B; PGGAN Sec. 4 and App. A.1 for WGAN-GP).

Pure functions first (each takes logits / images / ws and returns per-sample terms, so they can be
checked against closed forms), then `StyleGANLoss`, whose one entry `accumulate_gradients(phase,
inputs, ctx) -> RoundResult` runs G and D for one round of a training phase and accumulates gradients:

    phase   logistic (default)                               wgan-gp
    Gmain   softplus(-D(G(z)))                               -D(G(z))
    Greg    path length: (|J_w^T y| - a)^2 * pl_weight       (same)
    Dmain   softplus(D(G(z))) + softplus(-D(x))              D(G(z)) - D(x) + eps D(x)^2 + GP
    Dreg    R1 = gamma/2 |grad_x D(x)|^2 on reals            (GP lives in Dmain: no lazy form)
    Gboth / Dboth: main + reg in one pass (regularization interval 0 = every minibatch).

With `cls_weight` > 0 (ours, not official: the conditional CPU demo) Gmain adds
cls_weight * CE(class logits of D(G(z, c)), c) and Dmain cls_weight * CE(class logits of D(x), c_x):
an auxiliary classifier (AC-GAN, Odena et al. 2017) trained on reals only.

Lazy regularization multiplies a reg phase's loss by its interval (passed in as `gain`).

The path-length regularizer also comes in two halves, `path_length_pass` (the lengths, with their
graph) and `path_length_backward` (the penalty against a given phase mean), so a caller that runs a
phase over several rounds or processes can reduce the lengths in between: `training.stepper` does,
in one place. `accumulate_gradients` composes them with the round's own mean (the official
single-process definition).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F

from .. import perf
from ..models.generator import mix_styles
from ..ops.filters import filter2d
from .config import LossConfig

# ----------------------------------------------------------------------------------- pure terms


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating logistic G loss softplus(-D(G(z))) = -log sigmoid(D(G(z))); [N, 1] -> [N, 1]."""
    return F.softplus(-fake_logits)


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic D loss terms (softplus(D(fake)), softplus(-D(real))), each per sample."""
    return F.softplus(fake_logits), F.softplus(-real_logits)


def class_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of class logits [N, K] against label distributions [N, K] (one-hot) -> [N, 1]."""
    return F.cross_entropy(class_logits.float(), labels.float(), reduction="none").unsqueeze(1)


def wgan_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss -D(G(z)), per sample."""
    return -fake_logits


def wgan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, epsilon: float) -> torch.Tensor:
    """WGAN critic loss D(fake) - D(real) plus the PGGAN drift term epsilon * D(real)^2, per sample."""
    return fake_logits - real_logits + epsilon * real_logits.square()


def input_gradient_sq_norm(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """|grad_x sum(D(x))|^2 per sample, differentiable (create_graph): [N, ...] -> [N].

    `images` must require grad and `logits` must be computed from it. Since each logit depends
    only on its own sample, the gradient of the sum is the per-sample gradient.
    """
    (grad,) = torch.autograd.grad(outputs=[logits.sum()], inputs=[images], create_graph=True,
                                  only_inputs=True)
    return grad.square().flatten(1).sum(1)


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018) *without* the gamma/2 factor: |grad_x D(x)|^2 per sample [N]."""
    return input_gradient_sq_norm(real_logits, real_images)


def gradient_penalty(mixed_logits: torch.Tensor, mixed_images: torch.Tensor, target: float = 1.0) -> torch.Tensor:
    """WGAN-GP as in PGGAN: (|grad_x D(x_hat)| - target)^2 / target^2 per sample [N] (times lambda by the caller)."""
    norm = (input_gradient_sq_norm(mixed_logits, mixed_images) + 1e-12).sqrt()
    return (norm - target).square() / target ** 2


def pl_noise_like(images: torch.Tensor) -> torch.Tensor:
    """Path-length probe y ~ N(0, I) / sqrt(H W), shaped like the images [N, C, H, W]."""
    return torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])


def path_lengths(images: torch.Tensor, ws: torch.Tensor, noise: torch.Tensor,
                 create_graph: bool = True) -> torch.Tensor:
    """|J_w^T y| per sample (StyleGAN2 Sec. 3.2): len = sqrt(mean over style inputs of sum_c g^2).

    images [N, C, H, W] computed from ws [N, num_ws, w_dim]; noise like the images.
    g = d(sum(images * noise)) / d ws (autograd; create_graph to train on it) -> [N].
    """
    (grad,) = torch.autograd.grad(outputs=[(images * noise).sum()], inputs=[ws], create_graph=create_graph,
                                  only_inputs=True)
    return grad.square().sum(2).mean(1).sqrt()


def path_length_surrogate(lengths: torch.Tensor, pl_mean: torch.Tensor, phase_mean: torch.Tensor,
                          decay: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The path-length penalty as the official code defines it, per sample, and a loss with its gradient.

    a = pl_mean + decay (m - pl_mean) is the running mean after this phase, m the mean length over
    the phase's samples (all rounds, all processes). The penalty is (l_j - a)^2, and a depends on
    every l_i through m, so d/dl_j mean_i (l_i - a)^2 = (2 / N) [(l_j - a) - decay (m - a)].
    Returns (penalty [n], surrogate [n]) with surrogate = (l_j - a)^2 - 2 decay (m - a) l_j,
    a and m constants: its per-sample gradient is exactly that, so rounds and processes can each
    backpropagate their own samples. lengths: [n]; pl_mean, phase_mean: scalars.
    """
    a = pl_mean.lerp(phase_mean, decay).detach()
    penalty = (lengths - a).square()
    surrogate = penalty - 2 * decay * (phase_mean.detach() - a) * lengths
    return penalty, surrogate


def d_blur_sigma(cfg: LossConfig, cur_nimg: int) -> float:
    """Sigma of the blur of D's input images after `cur_nimg` images (StyleGAN3 config R):
    blur_init_sigma, faded linearly to 0 over blur_fade_kimg; 0 (off) when blur_fade_kimg is 0."""
    if cfg.blur_fade_kimg <= 0 or cfg.blur_init_sigma <= 0:
        return 0.0
    return max(1 - cur_nimg / (cfg.blur_fade_kimg * 1e3), 0.0) * cfg.blur_init_sigma


def blur_images(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """The D input blur of stylegan3's loss: a separable filter of 2 floor(3 sigma) + 1 taps,
    2^-(x / sigma)^2 normalised to sum 1, zero padded to keep the size. Identity when the
    filter would have one tap (sigma < 1/3)."""
    size = math.floor(sigma * 3)
    if size <= 0:
        return img
    f = torch.arange(-size, size + 1, device=img.device, dtype=torch.float32).div(sigma).square().neg().exp2()
    return filter2d(img, f / f.sum())


def lazy_regularization_adam(lr: float, betas: tuple[float, float], interval: int | None) -> tuple[float, tuple[float, float]]:
    """Adam hyperparameters for a network regularized every `interval` minibatches (StyleGAN2 App. B).

    c = k / (k + 1): lr' = c lr, betas' = betas^c. Interval 0/None (no lazy regularization): unchanged.
    """
    if not interval:
        return lr, tuple(betas)
    c = interval / (interval + 1)
    return lr * c, (betas[0] ** c, betas[1] ** c)


# ----------------------------------------------------------------------------------- training loss


@dataclass(frozen=True)
class PhaseWork:
    """What one phase computes: Gmain / Dmain (adversarial), Greg / Dreg (lazy regularization),
    Gboth / Dboth (both, when the regularizer runs every minibatch)."""

    G_main: bool
    G_pl: bool  # path length
    D_main: bool
    D_r1: bool
    D_gp: bool  # WGAN-GP gradient penalty (part of D main)
    wgan: bool

    @classmethod
    def of(cls, phase: str, cfg: LossConfig) -> "PhaseWork":
        wgan = cfg.kind == "wgan-gp"
        d_main = phase in ("Dmain", "Dboth")
        return cls(G_main=phase in ("Gmain", "Gboth"), G_pl=phase in ("Greg", "Gboth") and cfg.pl_weight > 0,
                   D_main=d_main, D_r1=phase in ("Dreg", "Dboth") and not wgan and cfg.r1_gamma > 0,
                   D_gp=d_main and wgan and cfg.wgan_lambda > 0, wgan=wgan)

    @property
    def double_backward(self) -> bool:
        """R1, path length and GP differentiate a gradient: compiled graphs cannot."""
        return self.G_pl or self.D_r1 or self.D_gp


@dataclass(frozen=True)
class RoundInputs:
    """One round's samples: this process's share of the minibatch (or one accumulation round of it)."""

    real_img: Optional[torch.Tensor]  # [n, C, H, W] in [-1, 1] (D phases)
    real_c: Optional[torch.Tensor]  # [n, c_dim] or None
    gen_z: torch.Tensor  # [n, z_dim]
    gen_c: Optional[torch.Tensor]  # [n, c_dim] or None


@dataclass(frozen=True)
class PhaseContext:
    """What a round needs to know about its phase, passed in explicitly by the caller.

    gain: the phase's interval divided by its rounds (lazy regularization; gradients are batch
    means). pl_mean: the path-length running mean before this phase (None: 0). mixing_num_ws:
    style inputs in use (progressive growing), None for all. cur_nimg: images shown so far (the
    D input blur of `LossConfig.blur_init_sigma` fades with it).
    """

    gain: float = 1.0
    pl_mean: Optional[torch.Tensor] = None
    mixing_num_ws: Optional[int] = None
    cur_nimg: int = 0  # images shown before this minibatch (the D input blur's fade; 0 = no fade yet)


@dataclass(frozen=True)
class PathLengthPass:
    """The first half of a path-length round: lengths [n] of the round's first n = N / pl_batch_shrink
    latents and the images [n, C, H, W] they come from (with the graph, unless made without)."""

    lengths: torch.Tensor
    images: torch.Tensor

    def sum_count(self) -> torch.Tensor:
        """[sum of the lengths, their count] in float32: what rounds and processes add up."""
        n = torch.tensor(float(self.lengths.shape[0]), dtype=torch.float32, device=self.lengths.device)
        return torch.stack([self.lengths.detach().sum().to(torch.float32), n])


@dataclass
class RoundResult:
    """What a round hands back besides its gradients (which are accumulated in the parameters).

    stats: per-sample values for the tick statistics, (name, tensor) pairs. pl_sum: [sum, count] of
    this round's path lengths (`PathLengthPass.sum_count`). w_sum: [w_dim + 1], the sum of the ws it mapped and their count
    (D main: the w_avg tracking of the official loss). real_logits: D(real) of D main, for ADA.
    """

    stats: list[tuple[str, torch.Tensor]] = field(default_factory=list)
    pl_sum: Optional[torch.Tensor] = None
    w_sum: Optional[torch.Tensor] = None
    real_logits: Optional[torch.Tensor] = None

    def extend(self, other: "RoundResult") -> None:
        """Add the results of another part of the same round (stats in order; sums where unset)."""
        self.stats.extend(other.stats)
        for name in ("pl_sum", "w_sum", "real_logits"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(other, name))


class StyleGANLoss:
    """Runs G / D for one round of a phase and accumulates gradients; holds no training state.

    G, D: the training networks. augment_pipe: applied to every image D sees (reals, fakes, R1
    reals, GP mixes) when given. The caller owns optimizers, running means and the reduction over
    processes: each round gets a `PhaseContext` in and gives a `RoundResult` back.

    Randomness (latents, mixing, noise inputs, augmentation, path-length probes) is drawn from the
    global torch RNG as it stands; the loss never seeds it. The stepper seeds it per training round
    (and before each path-length pass), so a result depends only on (seed, minibatch index, phase,
    round), not on the number of processes.
    """

    def __init__(self, G, D, cfg: LossConfig, augment_pipe: Optional[torch.nn.Module] = None,
                 compile: bool = False):
        self.G, self.D, self.cfg, self.augment_pipe = G, D, cfg, augment_pipe
        self.classes = cfg.cls_weight > 0
        if self.classes and (D.c_dim == 0 or D.cfg.aux_classes != D.c_dim):
            raise ValueError(f"cls_weight {cfg.cls_weight} needs a conditional discriminator with a classifier "
                             f"head of c_dim classes (DiscriminatorConfig.aux_classes = c_dim = {D.c_dim})")
        # `compile`: G.mapping, G.synthesis and D go through torch.compile (falling back to eager
        # with a warning). The regularization phases differentiate twice, which compiled graphs
        # cannot, so they run the plain modules (`eager=True` below). Parameters are shared.
        self.mapping = perf.maybe_compile(G.mapping, compile, dynamic=False)
        self.synthesis = perf.maybe_compile(G.synthesis, compile, dynamic=False)
        self.discriminator = perf.maybe_compile(D, compile, dynamic=False)

    # --------------------------------------------------------------------------- networks

    def run_G(self, z: torch.Tensor, c: Optional[torch.Tensor], mixing_num_ws: Optional[int] = None, *,
              eager: bool = False, update_emas: bool = False):
        """z [N, z_dim], c [N, c_dim] -> (images [N, C, R, R], ws [N, num_ws, w_dim]) with mixing.

        Style mixing (v1 Sec. 3.1) per sample: with probability `style_mixing_prob`, the styles from
        a crossover in [1, mixing_num_ws) on come from a second z. `eager`: the plain modules even
        when compiled ones exist (a gradient of this pass will be differentiated again).
        `update_emas`: a StyleGAN3 synthesis network moves each layer's input magnitude EMA
        (`SynthesisLayer.track_magnitude`), as the official loss does in D main; ignored for other
        versions. Like the official, each process moves its own EMAs from its own samples: they are
        not reduced over processes (rank 0's are the ones a snapshot stores).
        """
        G = self.G
        mapping, synthesis = (G.mapping, G.synthesis) if eager else (self.mapping, self.synthesis)
        ws = mapping(z, c if G.c_dim > 0 else None)
        prob = self.cfg.style_mixing_prob
        active = min(mixing_num_ws or ws.shape[1], ws.shape[1])
        if prob > 0 and active > 1:
            n = z.shape[0]
            crossover = torch.randint(1, active, [n], device=ws.device)
            use = torch.rand([n], device=ws.device) < prob
            crossover = torch.where(use, crossover, torch.full_like(crossover, ws.shape[1]))
            ws2 = mapping(torch.randn_like(z), c if G.c_dim > 0 else None)
            ws = mix_styles(ws, ws2, crossover)
        if update_emas and getattr(G.cfg, "version", None) == 3:
            img = synthesis(ws, noise_mode="random", update_emas=True)
        else:
            img = synthesis(ws, noise_mode="random")
        return img, ws

    def run_D(self, img: torch.Tensor, c: Optional[torch.Tensor], *, eager: bool = False,
              blur_sigma: float = 0.0) -> torch.Tensor:
        """Logits [N, 1] of the (blurred, augmented) images."""
        return self.run_D_scores(img, c, classes=False, eager=eager, blur_sigma=blur_sigma)[0]

    def run_D_scores(self, img: torch.Tensor, c: Optional[torch.Tensor], classes: bool = True, *,
                     eager: bool = False, blur_sigma: float = 0.0) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(logits [N, 1], class logits [N, K] or None) of the (augmented) images, from one pass.

        Class logits come only with `classes` and a classifier head (`cls_weight` > 0); that pass
        runs the plain D (torch.compile wraps D's forward, which returns the logits alone).
        `blur_sigma` > 0: the images are blurred first (`blur_images`, before augmentation)."""
        if blur_sigma > 0:
            img = blur_images(img, blur_sigma)
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        c = c if self.D.c_dim > 0 else None
        if classes and self.classes:
            return self.D.scores(img, c)
        return (self.D if eager else self.discriminator)(img, c), None

    # --------------------------------------------------------------------------- phases

    def accumulate_gradients(self, phase: str, inputs: RoundInputs, ctx: PhaseContext = PhaseContext()) -> RoundResult:
        """Forward + backward for one round of `phase` (Gmain, Greg, Gboth, Dmain, Dreg, Dboth).

        Every loss is averaged over the round's samples and multiplied by `ctx.gain`. The path
        length's mean is the round's own (one process, one round: the official definition).
        """
        work = PhaseWork.of(phase, self.cfg)
        out = self._accumulate(work, inputs, ctx)
        if work.G_pl:
            pl = self.path_length_pass(inputs, ctx)
            out.extend(self.path_length_backward(pl, ctx, pl.sum_count()))
        return out

    def _accumulate(self, work: "PhaseWork", inputs: RoundInputs, ctx: PhaseContext) -> RoundResult:
        """Everything of a round but the path length: G main, D main, R1, GP."""
        cfg, gain, out = self.cfg, ctx.gain, RoundResult()
        wgan, eager = work.wgan, work.double_backward
        real_img, real_c, gen_z, gen_c = inputs.real_img, inputs.real_c, inputs.gen_z, inputs.gen_c
        blur = d_blur_sigma(cfg, ctx.cur_nimg)

        def report(name: str, value: torch.Tensor) -> None:
            out.stats.append((name, value.detach()))

        if work.G_main:
            gen_img, _ = self.run_G(gen_z, gen_c, ctx.mixing_num_ws, eager=eager)
            gen_logits, gen_classes = self.run_D_scores(gen_img, gen_c, eager=eager, blur_sigma=blur)
            report("Loss/scores/fake", gen_logits)
            report("Loss/signs/fake", gen_logits.sign())
            loss_G = wgan_g_loss(gen_logits) if wgan else g_nonsaturating_loss(gen_logits)
            report("Loss/G/loss", loss_G)
            if gen_classes is not None:  # AC-GAN: a fake should be classified as its label
                loss_cls = class_loss(gen_classes, gen_c)
                report("Loss/G/cls", loss_cls)
                loss_G = loss_G + loss_cls * cfg.cls_weight
            loss_G.mean().mul(gain).backward()

        loss_terms = []
        if work.D_main:
            with torch.no_grad():
                gen_img, gen_ws = self.run_G(gen_z, gen_c, ctx.mixing_num_ws, eager=eager, update_emas=True)
                w = gen_ws[:, 0].to(torch.float32)
                out.w_sum = torch.cat([w.sum(0), torch.tensor([w.shape[0]], dtype=torch.float32, device=w.device)])
            gen_logits = self.run_D(gen_img, gen_c, eager=eager, blur_sigma=blur)
            report("Loss/scores/fake", gen_logits)
            report("Loss/signs/fake", gen_logits.sign())

        if work.D_main or work.D_r1:
            real = real_img.detach().requires_grad_(work.D_r1)
            real_logits, real_classes = self.run_D_scores(real, real_c, classes=work.D_main, eager=eager,
                                                          blur_sigma=blur)
            if work.D_main:
                report("Loss/scores/real", real_logits)
                report("Loss/signs/real", real_logits.sign())
                out.real_logits = real_logits.detach()
                if wgan:
                    loss_D = wgan_d_loss(real_logits, gen_logits, cfg.wgan_epsilon)
                else:
                    loss_fake, loss_real = d_logistic_loss(real_logits, gen_logits)
                    loss_D = loss_fake + loss_real
                report("Loss/D/loss", loss_D)
                loss_terms.append(loss_D)
            if real_classes is not None:  # AC-GAN: D learns the reals' labels (fakes do not train it)
                loss_cls = class_loss(real_classes, real_c)
                report("Loss/D/cls", loss_cls)
                report("Loss/D/cls_accuracy", (real_classes.argmax(1) == real_c.argmax(1)).float())
                loss_terms.append(loss_cls * cfg.cls_weight)
            if work.D_r1:
                penalty = r1_penalty(real_logits, real)  # [N]
                report("Loss/r1_penalty", penalty)
                loss_r1 = penalty.unsqueeze(1) * (cfg.r1_gamma / 2)
                report("Loss/D/reg", loss_r1)
                loss_terms.append(loss_r1 + real_logits * 0)
            if work.D_gp:
                alpha = torch.rand([real_img.shape[0], 1, 1, 1], device=real_img.device)
                mixed = real_img.detach().lerp(gen_img.detach(), alpha).requires_grad_(True)
                mixed_logits = self.run_D(mixed, real_c, eager=eager, blur_sigma=blur)
                gp = gradient_penalty(mixed_logits, mixed, cfg.wgan_target)  # [N]
                report("Loss/gp", gp)
                loss_gp = gp.unsqueeze(1) * cfg.wgan_lambda
                report("Loss/D/reg", loss_gp)
                loss_terms.append(loss_gp)
        if loss_terms:
            sum(t.mean() for t in loss_terms).mul(gain).backward()
        return out

    # --------------------------------------------------------------------------- path length, in halves

    def path_length_pass(self, inputs: RoundInputs, ctx: PhaseContext, create_graph: bool = True) -> PathLengthPass:
        """Path lengths |J_w^T y| (StyleGAN2 Sec. 3.2) of the first 1/pl_batch_shrink of the round's
        latents, on the plain modules (the lengths are differentiated again).

        Mixing, noise inputs and the probe y come from the torch RNG as it stands: seeded the same,
        a pass without the graph (`create_graph=False`) gives exactly the lengths one with it trains on.
        """
        gen_z, gen_c = inputs.gen_z, inputs.gen_c
        n = max(gen_z.shape[0] // self.cfg.pl_batch_shrink, 1)
        img, ws = self.run_G(gen_z[:n], None if gen_c is None else gen_c[:n], ctx.mixing_num_ws, eager=True)
        lengths = path_lengths(img, ws, pl_noise_like(img), create_graph=create_graph)
        return PathLengthPass(lengths if create_graph else lengths.detach(), img)

    def path_length_backward(self, pl: PathLengthPass, ctx: PhaseContext, phase_sum: torch.Tensor) -> RoundResult:
        """Backpropagate the path-length penalty of `pl` towards the phase mean phase_sum[0] / phase_sum[1].

        `phase_sum`: [sum, count] of the lengths of the whole phase (every round, every process), or
        `pl.sum_count()` for the round alone; `path_length_surrogate` explains why a per-round
        backward with the phase mean equals the official gradient of the whole phase.
        """
        cfg, out = self.cfg, RoundResult(pl_sum=pl.sum_count())
        pl_mean = ctx.pl_mean if ctx.pl_mean is not None else torch.zeros([], device=pl.lengths.device)
        penalty, surrogate = path_length_surrogate(pl.lengths, pl_mean, phase_sum[0] / phase_sum[1], cfg.pl_decay)
        out.stats.append(("Loss/pl_penalty", penalty.detach()))
        out.stats.append(("Loss/G/reg", (penalty * cfg.pl_weight).detach()))
        # `images[:, 0, 0, 0] * 0` keeps every synthesis parameter in the graph (as officially).
        (pl.images[:, 0, 0, 0] * 0 + surrogate * cfg.pl_weight).mean().mul(ctx.gain).backward()
        return out


__all__ = ["PhaseWork", "RoundInputs", "PhaseContext", "PathLengthPass", "RoundResult", "path_length_surrogate",
           "g_nonsaturating_loss", "d_logistic_loss", "class_loss", "wgan_g_loss", "wgan_d_loss",
           "input_gradient_sq_norm",
           "r1_penalty", "gradient_penalty", "pl_noise_like", "path_lengths", "lazy_regularization_adam",
           "d_blur_sigma", "blur_images", "StyleGANLoss"]
