"""Gaussian-process surrogate and expected improvement, on plain arrays.

Symbols and shapes:
    X      (n, D)  GP inputs in [0, 1]: one column per float/int dimension (its unit-cube
                   code), one column per choice of a categorical (one-hot)
    y      (n,)    standardised scores, higher is better (mean 0, std 1 over the observations)
    Xq     (m, D)  query points
    ls     (D,)    length scales, one per column (ARD), in unit-cube units
    s2             signal variance k(x, x)
    noise          observation noise variance, in standardised units
    best           the incumbent: the highest standardised score
    z              (mu - best) / sigma

Kernel: Matern 5/2,  k(r) = s2 (1 + sqrt5 r + 5/3 r^2) exp(-sqrt5 r),  r = |(x - x') / ls|.
Acquisition: log EI(x) = log sigma + log h(z),  h(z) = z Phi(z) + phi(z).

Believer: the posterior also conditioned on points at values it did not observe
(`condition`); AtFidelity: a GP over (x, z) seen at one fidelity z, as a GP over x.
Nothing here knows about trials or search spaces; encoding.py does the encoding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.special import erfcx, log_ndtr

SQRT5 = math.sqrt(5.0)
JITTER = 1e-8  # added to the kernel diagonal: the Cholesky of a near-duplicate design must not fail


@dataclass(frozen=True)
class GPParams:
    ls: np.ndarray  # (D,)
    s2: float
    noise: float


def matern52(X1: np.ndarray, X2: np.ndarray, ls: np.ndarray, s2: float) -> np.ndarray:
    """(n1, D), (n2, D) -> (n1, n2) kernel matrix."""
    d = (X1[:, None, :] - X2[None, :, :]) / ls
    r = np.sqrt(np.maximum((d * d).sum(-1), 0.0))
    return s2 * (1.0 + SQRT5 * r + (5.0 / 3.0) * r * r) * np.exp(-SQRT5 * r)


NOISE_MIN = 1e-6  # a floor on the noise variance: at 0 the likelihood of a few points is unbounded


def log_prior(ls: np.ndarray, s2: float, noise: float) -> tuple[float, np.ndarray, float, float]:
    """Log prior density (up to a constant) and its derivatives in log ls, in s2 and in noise.

    Weakly informative, on the standardised unit-cube problem (the shapes Optuna's GPSampler
    uses): each length scale is pulled towards 1 from both sides by -0.1 (ls^2 + ls^-2), so
    that a handful of points can neither shrink it to 0 (every point its own island) nor grow
    it without bound (a flat model); s2 ~ Gamma(2, 1) (mode 1, the standardised variance);
    noise ~ Gamma(1.1, 30) (mostly below 0.1, free to be tiny).
    """
    lp = -0.1 * (ls**2 + ls**-2).sum() + (math.log(s2) - s2) + (0.1 * math.log(noise) - 30.0 * noise)
    return lp, -0.2 * (ls**2 - ls**-2), 1.0 / s2 - 1.0, 0.1 / noise - 30.0


def _neg_log_posterior(theta: np.ndarray, D2: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """-(log marginal likelihood + log prior) and its gradient in theta = (log ls, log s2, log noise')."""
    n, D = D2.shape[0], D2.shape[2]
    ls, s2 = np.exp(theta[:D]), math.exp(theta[D])
    excess = math.exp(theta[D + 1])
    noise = NOISE_MIN + excess
    r = np.sqrt((D2 / ls**2).sum(-1))
    e = np.exp(-SQRT5 * r)
    Kf = s2 * (1.0 + SQRT5 * r + (5.0 / 3.0) * r * r) * e
    K = Kf + (noise + JITTER) * np.eye(n)
    try:
        L = np.linalg.cholesky(K)
    except np.linalg.LinAlgError:
        return 1e25, np.zeros_like(theta)  # L-BFGS-B backs off from here
    alpha = cho_solve((L, True), y)
    nll = 0.5 * y @ alpha + np.log(np.diag(L)).sum()
    # d nll / d theta_i = -1/2 tr((alpha alpha^T - K^-1) dK/dtheta_i)
    W = np.outer(alpha, alpha) - cho_solve((L, True), np.eye(n))
    G = (5.0 / 3.0) * s2 * (1.0 + SQRT5 * r) * e  # dK/dlog ls_j = G * D2_j / ls_j^2, smooth at r = 0
    grad = np.empty_like(theta)
    grad[:D] = -0.5 * np.einsum("ij,ijk->k", W * G, D2) / ls**2
    grad[D] = -0.5 * (W * Kf).sum()
    grad[D + 1] = -0.5 * np.trace(W) * excess
    lp, dls, ds2, dnoise = log_prior(ls, s2, noise)
    grad[:D] -= dls
    grad[D] -= ds2 * s2
    grad[D + 1] -= dnoise * excess
    return float(nll - lp), grad


def fit_hyperparameters(X: np.ndarray, y: np.ndarray) -> GPParams:
    """MAP estimate of (ls, s2, noise): marginal likelihood times `log_prior`, by L-BFGS-B.

    Hand-written rather than scikit-learn's GaussianProcessRegressor (ConstantKernel * Matern
    + WhiteKernel), which maximises the likelihood alone within box bounds: with it, at 10-40
    points, length scales pile up on the bounds and the search stalls in a local optimum of
    Hartmann3 and Hartmann6 (docs/bench_strategies.md, "Why a hand-written GP"). The priors
    fix that, and one deterministic start at the prior's mode replaces random restarts.
    """
    from scipy.optimize import minimize

    D = X.shape[1]
    D2 = (X[:, None, :] - X[None, :, :]) ** 2  # (n, n, D)
    theta0 = np.concatenate([np.zeros(D), [0.0, math.log(1e-2)]])
    bounds = [(math.log(1e-3), math.log(1e3))] * D + [(math.log(1e-3), math.log(1e3)), (math.log(1e-9), 0.0)]
    res = minimize(
        _neg_log_posterior,
        theta0,
        args=(D2, y),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 200},
    )
    theta = res.x if np.isfinite(res.fun) and res.fun < 1e24 else theta0
    return GPParams(
        ls=np.exp(theta[:D]), s2=float(math.exp(theta[D])), noise=NOISE_MIN + math.exp(theta[D + 1])
    )


MAX_ROWS = 128  # the posterior holds at most this many rows (`subset`)
REFIT_EVERY_UNTIL = 100  # observed trials up to which the hyperparameters are refitted at every suggestion


def subset(y: np.ndarray, size: int = MAX_ROWS) -> np.ndarray:
    """Indices of at most `size` rows to condition on: all of them up to `size`; past it, the best
    half by y and the rest at evenly spaced ranks of the others, so the model is exact where EI
    looks (near the top) and still knows the shape of the whole (a GP over the best points and a
    spread, which bounds a suggestion's cost: Cholesky is cubic in the rows). Deterministic."""
    n = len(y)
    if n <= size:
        return np.arange(n)
    order = np.argsort(-y, kind="stable")
    top, rest = order[: size // 2], order[size // 2 :]
    return np.sort(np.concatenate([top, rest[evenly(len(rest), size - size // 2)]]))


def evenly(n: int, size: int = MAX_ROWS) -> np.ndarray:
    """Indices of at most `size` of n rows, evenly spaced (all of them up to `size`)."""
    if n <= size:
        return np.arange(n)
    return np.linspace(0, n - 1, size).round().astype(int)


def anchor_size(n_observed: int) -> int:
    """The largest 100 * 1.1^k (rounded) within n_observed: the trials the hyperparameters are
    fitted on once more than REFIT_EVERY_UNTIL are observed."""
    m = REFIT_EVERY_UNTIL
    while round(m * 1.1) <= n_observed:
        m = round(m * 1.1)
    return m


def standardise(v: np.ndarray) -> np.ndarray:
    std = v.std()
    return (v - v.mean()) / (std if std > 0 else 1.0)  # all equal: any scale will do


def warp_outputs(y: np.ndarray) -> tuple[np.ndarray, float]:
    """Yeo-Johnson power transform, lambda by maximum likelihood, then standardised again.

    Test functions and training curves alike have a long tail of bad scores (a diverged lr);
    a stationary GP fitted to them spends its variance on the tail and models the top, where
    the optimum is, as flat. The monotone warp keeps the order of the scores (HEBO does this).
    """
    from scipy.stats import yeojohnson

    if len(y) < 3 or np.ptp(y) == 0:
        return y, 1.0
    yw, lam = yeojohnson(y)
    if not np.all(np.isfinite(yw)):  # an extreme lambda can overflow; then do without the warp
        return y, 1.0
    return standardise(yw), float(lam)


class Posterior:
    """The GP conditioned on (X, y) with fixed hyperparameters."""

    def __init__(self, X: np.ndarray, y: np.ndarray, params: GPParams):
        self.X, self.p = X, params
        K = matern52(X, X, params.ls, params.s2)
        K[np.diag_indices_from(K)] += params.noise + JITTER
        self.L = np.linalg.cholesky(K)
        self.alpha = cho_solve((self.L, True), y)
        self._Kinv: np.ndarray | None = None

    def predict(self, Xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(m, D) -> mean (m,), variance (m,) of the latent function (noise not included)."""
        Kq = matern52(Xq, self.X, self.p.ls, self.p.s2)
        V = solve_triangular(self.L, Kq.T, lower=True)
        # Round-off can make s2 - |v|^2 slightly negative at the data: clip, never sqrt a negative.
        var = np.maximum(self.p.s2 - (V * V).sum(0), 1e-12)
        return Kq @ self.alpha, var

    def _inverse(self) -> np.ndarray:
        """K^-1, computed once on first use (the acquisition's local search calls
        predict_with_grad hundreds of times on one posterior)."""
        if self._Kinv is None:
            self._Kinv = cho_solve((self.L, True), np.eye(len(self.X)))
        return self._Kinv

    def predict_with_grad(self, x: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
        """(D,) -> mean, variance and their gradients (D,), (D,) with respect to x."""
        ls2 = self.p.ls**2
        diff = x[None, :] - self.X  # (n, D)
        r = np.sqrt(np.maximum(((diff / self.p.ls) ** 2).sum(-1), 0.0))  # (n,)
        e = np.exp(-SQRT5 * r)
        k = self.p.s2 * (1.0 + SQRT5 * r + (5.0 / 3.0) * r * r) * e  # (n,)
        # dk/dx = -(5/3) s2 (1 + sqrt5 r) exp(-sqrt5 r) (x - x') / ls^2: smooth at r = 0, no 1/r.
        dk = (-(5.0 / 3.0) * self.p.s2 * (1.0 + SQRT5 * r) * e)[:, None] * diff / ls2  # (n, D)
        w = self._inverse() @ k  # K^-1 k, (n,): one matrix product, not two triangular solves per call
        mu = float(k @ self.alpha)
        var = float(self.p.s2 - k @ w)
        return mu, max(var, 1e-12), dk.T @ self.alpha, -2.0 * dk.T @ w


def condition(
    post: Posterior,
    X: np.ndarray,
    y: np.ndarray,
    params: GPParams,
    believe: np.ndarray,
    failed: np.ndarray,
    worst: float,
) -> tuple[Posterior, np.ndarray]:
    """The GP also conditioned on the `believe` points at its predicted mean (kriging believer:
    pending trials, so parallel workers go elsewhere) and the `failed` points at `worst` (so the
    search moves away from what broke); and the believed values. Each kind is capped at
    MAX_ROWS points, evenly spread in the order given, so thousands of failed or pruned
    trials do not make a suggestion cubic in the history."""
    if not len(believe) and not len(failed):
        return post, np.empty(0)
    believe, failed = believe[evenly(len(believe))], failed[evenly(len(failed))]
    believed = post.predict(believe)[0] if len(believe) else np.empty(0)
    yp = np.concatenate([believed, np.full(len(failed), worst)])
    return Posterior(np.vstack([X, believe, failed]), np.concatenate([y, yp]), params), believed


class AtFidelity:
    """A GP over (x, z), z its last input column, seen at one fidelity z: a GP over x alone."""

    def __init__(self, post: Posterior, z: float):
        self.post, self.z = post, z

    def predict(self, Xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.post.predict(np.hstack([Xq, np.full((len(Xq), 1), self.z)]))

    def predict_with_grad(self, x: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
        mu, var, dmu, dvar = self.post.predict_with_grad(np.append(x, self.z))
        return mu, var, dmu[:-1], dvar[:-1]


# --- expected improvement -------------------------------------------------------------------------
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_C = math.log(math.sqrt(math.pi / 2.0))


def log_h(z: np.ndarray) -> np.ndarray:
    """log(z Phi(z) + phi(z)), finite for every finite z.

    Naively h(z) underflows to 0 below z ~ -38 and loses all digits well before, by
    cancellation of z Phi(z) against phi(z). Below z = -1 we use
        h(z) = phi(z) (1 - |z| sqrt(pi/2) erfcx(|z| / sqrt2)),
    with erfcx (scaled erfc) so nothing underflows, and log1p-free log(-expm1(.)) for the
    bracket (Ament et al. 2023, "Unexpected improvements to expected improvement").
    Below z = -1e6 the bracket is 1/z^2 to double precision, so use that asymptote.
    """
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    hi = z > -1.0
    zh = z[hi]
    out[hi] = np.log(zh * np.exp(log_ndtr(zh)) + np.exp(-0.5 * zh * zh - _LOG_SQRT_2PI))
    lo = ~hi
    zl = z[lo]
    mid = zl > -1e6
    logphi = -0.5 * zl * zl - _LOG_SQRT_2PI
    a = np.log(erfcx(-zl[mid] / math.sqrt(2.0)) * -zl[mid]) + _C  # log(|z| Phi/phi), in (-inf, 0)
    bracket = np.empty_like(zl)
    bracket[mid] = np.log(-np.expm1(a))
    bracket[~mid] = -2.0 * np.log(-zl[~mid])
    out[lo] = logphi + bracket
    return out


def log_ei(mu: np.ndarray, var: np.ndarray, best: float) -> np.ndarray:
    """log EI for maximisation; mu, var (m,) -> (m,)."""
    sigma = np.sqrt(var)
    return np.log(sigma) + log_h((mu - best) / sigma)


def log_ei_with_grad(
    mu: float, var: float, dmu: np.ndarray, dvar: np.ndarray, best: float
) -> tuple[float, np.ndarray]:
    """log EI at one point and its gradient, from the posterior and its gradient."""
    sigma = math.sqrt(var)
    z = (mu - best) / sigma
    lh = float(log_h(np.array([z]))[0])
    dsigma = dvar / (2.0 * sigma)
    # d log h / dz = Phi(z) / h(z): a ratio of two tiny numbers for z << 0, so take it in logs.
    dlh = math.exp(float(log_ndtr(z)) - lh)
    dz = (dmu - z * dsigma) / sigma
    return math.log(sigma) + lh, dsigma / sigma + dlh * dz
