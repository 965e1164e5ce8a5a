"""Variational autoencoders over style codes (the style predictor's 100-d vectors).

:class:`StyleVAE` maps a style code ``N×D`` to a small latent ``N×Z`` (mean and log-variance) and back. With
``num_labels > 0`` it is a conditional VAE: encoder and decoder also see a one-hot label ``N×L``, so that decoding
prior samples with a fixed label draws new members of that family of styles.

A conditional VAE also learns a prior per label, p(z | label) = N(prior_mu[label], exp(prior_logvar[label])),
instead of one N(0, I) for all: a decoder conditioned on the label can learn to ignore it (the latent already
tells the family apart), but a prior per label always places each family in its own region of the latent space,
so that drawing from a label's prior draws from that family.

The network carries the standardisation of the codes as buffers (``code_mean``, ``code_std``, both ``D``): it works
on standardised codes internally, and :meth:`StyleVAE.standardise` / :meth:`StyleVAE.unstandardise` convert raw
codes. The decoder is a Gaussian with a learned per-dimension log standard deviation (``log_sigma``, ``D``), so that
:func:`elbo` is a true evidence lower bound in nats per code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brushwork.nets.mobilenet import STYLE_DIM


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with SiLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class StyleVAE(nn.Module):
    """A (conditional) VAE: style code ``N×D`` (standardised) ⇄ latent ``N×Z``.

    code_dim: D, the style-code size (100 for Ghiasi's predictor).
    latent_dim: Z.
    hidden: width of the two hidden layers of encoder and decoder.
    num_labels: L; 0 for an unconditional VAE, else encoder and decoder take a one-hot label ``N×L``.
    """

    def __init__(self, code_dim: int = STYLE_DIM, latent_dim: int = 8, hidden: int = 64, num_labels: int = 0) -> None:
        super().__init__()
        self.code_dim, self.latent_dim, self.hidden, self.num_labels = code_dim, latent_dim, hidden, num_labels
        self.encoder = _mlp([code_dim + num_labels, hidden, hidden, 2 * latent_dim])
        self.decoder = _mlp([latent_dim + num_labels, hidden, hidden, code_dim])
        # linear paths beside the MLPs: the linear (PCA-like) structure of the codes is learnt at once
        self.encoder_linear = nn.Linear(code_dim + num_labels, 2 * latent_dim, bias=False)
        self.decoder_linear = nn.Linear(latent_dim + num_labels, code_dim, bias=False)
        self.log_sigma = nn.Parameter(torch.zeros(code_dim))
        if num_labels:
            self.prior_mu = nn.Parameter(torch.zeros(num_labels, latent_dim))
            self.prior_logvar = nn.Parameter(torch.zeros(num_labels, latent_dim))
        self.register_buffer("code_mean", torch.zeros(code_dim))
        self.register_buffer("code_std", torch.ones(code_dim))

    @classmethod
    def from_state(cls, state: dict[str, Tensor]) -> StyleVAE:
        """Build the architecture whose sizes match ``state`` (a state dict) and load it."""
        d_in = state["encoder.0.weight"].shape[1]
        hidden = state["encoder.0.weight"].shape[0]
        code_dim = state["code_mean"].shape[0]
        latent_dim = state["encoder.4.weight"].shape[0] // 2
        net = cls(code_dim, latent_dim, hidden, d_in - code_dim)
        net.load_state_dict(state)
        return net

    # -- standardisation ---------------------------------------------------------------------------------------

    def standardise(self, codes: Tensor) -> Tensor:
        """Raw style codes ``N×D`` → standardised codes ``N×D`` (zero mean, unit variance on the training set)."""
        return (codes - self.code_mean) / self.code_std

    def unstandardise(self, x: Tensor) -> Tensor:
        """Standardised codes ``N×D`` → raw style codes ``N×D``."""
        return x * self.code_std + self.code_mean

    # -- the two halves ----------------------------------------------------------------------------------------

    def _one_hot(self, label: Tensor | None, like: Tensor) -> Tensor:
        if label is None:
            raise ValueError("this VAE is conditional: pass a label (N×L one-hot, or N integer indices)")
        if label.dim() == 1:
            label = F.one_hot(label.long(), self.num_labels)
        return label.to(like.dtype).expand(like.shape[0], -1)

    def _with_label(self, x: Tensor, label: Tensor | None) -> Tensor:
        if self.num_labels == 0:
            return x
        return torch.cat([x, self._one_hot(label, x)], dim=1)

    def prior(self, z_like: Tensor, label: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean and log-variance ``N×Z`` of the prior p(z | label) for a batch shaped like ``z_like`` (``N×Z``):
        N(0, I) for an unconditional VAE, the label's learned Gaussian for a conditional one."""
        if self.num_labels == 0:
            return torch.zeros_like(z_like), torch.zeros_like(z_like)
        one_hot = self._one_hot(label, z_like)
        return one_hot @ self.prior_mu, (one_hot @ self.prior_logvar).clamp(-8.0, 4.0)

    def encode(self, x: Tensor, label: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Standardised codes ``N×D`` (and labels) → posterior mean ``N×Z`` and log-variance ``N×Z``."""
        h = self._with_label(x, label)
        mu, logvar = (self.encoder(h) + self.encoder_linear(h)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 6.0)

    def decode(self, z: Tensor, label: Tensor | None = None) -> Tensor:
        """Latents ``N×Z`` (and labels) → mean of the decoder's Gaussian, standardised codes ``N×D``."""
        h = self._with_label(z, label)
        return self.decoder(h) + self.decoder_linear(h)

    def forward(
        self, x: Tensor, label: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One reparameterised pass: standardised codes ``N×D`` → (reconstruction ``N×D``, mu ``N×Z``, logvar)."""
        mu, logvar = self.encode(x, label)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        return self.decode(z, label), mu, logvar


def gaussian_nll(x: Tensor, mean: Tensor, log_sigma: Tensor) -> Tensor:
    """Negative log-likelihood of ``x`` under N(mean, exp(log_sigma)²), summed over D: ``N×D`` → ``N`` (nats)."""
    return (0.5 * ((x - mean) * torch.exp(-log_sigma)) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)).sum(dim=1)


def kl_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL( N(mu, exp(logvar)) ‖ N(0, I) ), summed over Z: ``N×Z`` → ``N`` (nats)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def kl_normal(mu: Tensor, logvar: Tensor, prior_mu: Tensor, prior_logvar: Tensor) -> Tensor:
    """KL( N(mu, exp(logvar)) ‖ N(prior_mu, exp(prior_logvar)) ) of diagonal Gaussians, summed over Z:
    ``N×Z`` → ``N`` (nats)."""
    ratio = (logvar - prior_logvar).exp() + (mu - prior_mu).pow(2) * (-prior_logvar).exp()
    return 0.5 * (ratio - 1.0 - logvar + prior_logvar).sum(dim=1)


def elbo(
    net: StyleVAE, x: Tensor, label: Tensor | None = None, beta: float = 1.0, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """The beta-weighted ELBO of standardised codes ``N×D``, one reparameterised sample.

    Returns (elbo ``N``, reconstruction NLL ``N``, KL ``N``), all in nats; ``elbo = -(nll + beta * kl)``, which is
    the true evidence lower bound when ``beta == 1``.
    """
    recon, mu, logvar = net(x, label, generator)
    nll = gaussian_nll(x, recon, net.log_sigma)
    kl = kl_normal(mu, logvar, *net.prior(mu, label))
    return -(nll + beta * kl), nll, kl


def from_config(config: dict) -> StyleVAE:
    """The architecture described by a style VAE's JSON config (``code_dim``, ``latent_dim``, ``hidden``,
    ``labels``), random weights: the store's ``arch`` for the shipped style VAEs."""
    return StyleVAE(int(config["code_dim"]), int(config["latent_dim"]), int(config["hidden"]), len(config["labels"]))
