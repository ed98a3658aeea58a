"""Scaling laws: compute-optimal model size and data, and the loss to expect.

Chinchilla (Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models",
arXiv:2203.15556), approach 3, Eq. (2) and App. D.2: the parametric loss

    L(N, D) = E + A / N^α + B / D^β,   E = 1.69, A = 406.4, B = 410.7, α = 0.34, β = 0.28,

minimized under C = 6·N·D (Eq. 4) gives

    N_opt(C) = G·(C/6)^a,  D_opt(C) = G⁻¹·(C/6)^b,  G = (α·A / (β·B))^(1/(α+β)),
    a = β/(α+β),  b = α/(α+β).

With these printed (rounded) constants C = 5.76e23 gives N_opt ≈ 32B and D_opt ≈ 3.0T; the
paper's own optimum for that budget (Fig. 1, Table 3) is larger: the rule of thumb it leads
to is about 20 tokens per parameter (`tokens_per_param_optimal`), which is what approaches 1
and 2 (a ≈ b ≈ 0.5, Table 2) give.

Kaplan et al. 2020 ("Scaling Laws for Neural Language Models", arXiv:2001.08361) is the
alternative: L(N) = (N_c/N)^α_N (Eq. 1.1, N without embeddings), L(D) = (D_c/D)^α_D
(Eq. 1.2), and the compute-efficient frontier N_opt = 1.3e9·C^0.73, D_opt = 2e10·C^0.27 with
C in PF-days (Table 6).

Every function broadcasts over numpy arrays.
"""

from __future__ import annotations

import attrs
import numpy as np

from genaisdk.estimate.constants import CHINCHILLA_TOKENS_PER_PARAM, PF_DAY


@attrs.frozen(kw_only=True)
class ChinchillaFit:
    """Constants of L(N, D) = E + A/N^α + B/D^β."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    source: str

    @property
    def G(self) -> float:
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    @property
    def a(self) -> float:
        """Exponent of N_opt in C."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of D_opt in C."""
        return self.alpha / (self.alpha + self.beta)


CHINCHILLA = ChinchillaFit(
    E=1.69,
    A=406.4,
    B=410.7,
    alpha=0.34,
    beta=0.28,
    source="Hoffmann et al. 2022, arXiv:2203.15556, Eq. (2) and App. D.2 (approach 3)",
)

CHINCHILLA_EXPONENTS = {
    "approach1": (0.50, 0.50),
    "approach2": (0.49, 0.51),
    "approach3": (0.46, 0.54),
    "kaplan": (0.73, 0.27),
}
"""(a, b) with N_opt ∝ C^a and D_opt ∝ C^b, Hoffmann et al. 2022, Table 2."""


CHINCHILLA_PARAMS_RANGE = (7.0e7, 1.6e10)
"""The model sizes the fit was made on: "over 400 language models ranging from 70 million to
over 16 billion parameters" (Hoffmann et al. 2022, abstract and Sec. 3)."""

CHINCHILLA_TOKENS_RANGE = (5.0e9, 5.0e11)
"""The training lengths the fit was made on: "on 5 to 500 billion tokens" (Hoffmann et al.
2022, abstract and Sec. 3)."""


def chinchilla_in_range(params, tokens):
    """Whether (N, D) lies inside the ranges the fit was made on (`CHINCHILLA_PARAMS_RANGE`,
    `CHINCHILLA_TOKENS_RANGE`); outside them L(N, D) is an extrapolation."""
    n = np.asarray(params, dtype=float)
    d = np.asarray(tokens, dtype=float)
    (n_lo, n_hi), (d_lo, d_hi) = CHINCHILLA_PARAMS_RANGE, CHINCHILLA_TOKENS_RANGE
    return (n >= n_lo) & (n <= n_hi) & (d >= d_lo) & (d <= d_hi)


def uniform_loss(vocab):
    """ln V nats per token: the cross-entropy of a uniform guess over a vocabulary of V
    tokens. No trained model should predict worse (384 tokens: 5.95)."""
    return np.log(np.asarray(vocab, dtype=float))


def bounded_loss(params, tokens, vocab, fit: ChinchillaFit = CHINCHILLA):
    """`chinchilla_loss`, never above `uniform_loss(vocab)`: far below the fit's range
    (a 1M-parameter model) the power laws diverge past what any trained model scores."""
    return np.minimum(chinchilla_loss(params, tokens, fit), uniform_loss(vocab))


def chinchilla_loss(params, tokens, fit: ChinchillaFit = CHINCHILLA):
    """L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, Eq. 2), nats per token on their
    MassiveText distribution: a relative guide across sizes, not a promise on other data."""
    n = np.asarray(params, dtype=float)
    d = np.asarray(tokens, dtype=float)
    return fit.E + fit.A / n**fit.alpha + fit.B / d**fit.beta


def chinchilla_optimal(flops, fit: ChinchillaFit = CHINCHILLA):
    """(N_opt, D_opt) minimizing L(N, D) under C = 6·N·D (Hoffmann et al. 2022, Eq. 4 with
    the approach-3 fit). 6·N_opt·D_opt == C exactly."""
    c6 = np.asarray(flops, dtype=float) / 6.0
    return fit.G * c6**fit.a, c6**fit.b / fit.G


def tokens_per_param_optimal(flops, tokens_per_param=CHINCHILLA_TOKENS_PER_PARAM):
    """(N, D) with D = r·N and C = 6·N·D: N = sqrt(C / (6·r)) (Hoffmann et al. 2022, Table 3:
    about 20 tokens per parameter)."""
    c = np.asarray(flops, dtype=float)
    n = np.sqrt(c / (6.0 * tokens_per_param))
    return n, tokens_per_param * n


def optimal_params_for_tokens(tokens, tokens_per_param=CHINCHILLA_TOKENS_PER_PARAM):
    """The model size D tokens train compute-optimally: N = D / r."""
    return np.asarray(tokens, dtype=float) / tokens_per_param


@attrs.frozen(kw_only=True)
class KaplanFit:
    """Kaplan et al. 2020 constants (Eq. 1.1, 1.2, Table 6; C in PF-days)."""

    alpha_N: float = 0.076
    N_c: float = 8.8e13
    alpha_D: float = 0.095
    D_c: float = 5.4e13
    frontier_N: tuple[float, float] = (1.3e9, 0.73)
    frontier_D: tuple[float, float] = (2.0e10, 0.27)
    source: str = "Kaplan et al. 2020, arXiv:2001.08361, Eq. 1.1-1.2, Table 6"


KAPLAN = KaplanFit()


def kaplan_loss_params(non_embedding_params, fit: KaplanFit = KAPLAN):
    """L(N) = (N_c / N)^α_N for models trained to convergence (Kaplan et al. 2020, Eq. 1.1);
    N excludes embeddings."""
    return (fit.N_c / np.asarray(non_embedding_params, dtype=float)) ** fit.alpha_N


def kaplan_loss_tokens(tokens, fit: KaplanFit = KAPLAN):
    """L(D) = (D_c / D)^α_D with early stopping (Kaplan et al. 2020, Eq. 1.2)."""
    return (fit.D_c / np.asarray(tokens, dtype=float)) ** fit.alpha_D


def kaplan_optimal(flops, fit: KaplanFit = KAPLAN):
    """Compute-efficient (N_opt, D_opt) (Kaplan et al. 2020, Table 6): N = 1.3e9·C^0.73,
    D = 2e10·C^0.27, C in PF-days. Their C counts 6·N·B·S at the critical batch, so
    6·N·D is not exactly C here."""
    c = np.asarray(flops, dtype=float) / PF_DAY
    (kn, an), (kd, ad) = fit.frontier_N, fit.frontier_D
    return kn * c**an, kd * c**ad
