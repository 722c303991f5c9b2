"""The Frechet distance between two Gaussians, fitted to two sets of feature vectors (numpy only).

scripts/sample_quality.py computes it on a Fashion-MNIST classifier's features of real and
generated images ("FID" with that classifier in place of Inception). This module needs no torch,
so its test (tests/python/test_frechet.py) runs where PyTorch is not installed.

For N(mu1, S1) and N(mu2, S2):

    d^2 = |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2))

S1 S2 is not symmetric, but it is similar to the symmetric positive semi-definite matrix
M = S1^(1/2) S2 S1^(1/2) (conjugate by S1^(1/2)), so both have the same eigenvalues, all >= 0, and
Tr((S1 S2)^(1/2)) = Tr(M^(1/2)) = sum_i sqrt(lambda_i(M)). S1^(1/2) comes from the eigendecomposition
of the symmetric S1 (numpy.linalg.eigh: V diag(sqrt(w)) V^T); M's eigenvalues from
numpy.linalg.eigvalsh. Eigenvalues that rounding makes slightly negative are clipped to 0. This
replaces scipy.linalg.sqrtm of the non-symmetric product (which returns complex values from
rounding and is not installed everywhere) and works in float64 throughout.
"""

import numpy as np


def gaussian_stats(features):
    """(mean, covariance) of an (N, D) array of feature vectors, in float64 (covariance with the
    unbiased N - 1 denominator, as numpy.cov)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need an (N >= 2, D) array of features, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def sqrtm_psd(a):
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    a = np.asarray(a, dtype=np.float64)
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(s1, s2):
    """Tr((S1 S2)^(1/2)) for symmetric PSD S1, S2, through the symmetric S1^(1/2) S2 S1^(1/2)."""
    r = sqrtm_psd(s1)
    m = r @ np.asarray(s2, dtype=np.float64) @ r
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def frechet_distance(mu1, s1, mu2, s2):
    """The squared Frechet (2-Wasserstein) distance between N(mu1, s1) and N(mu2, s2), the number
    called FID. Never negative (a value below 0 from rounding is returned as 0)."""
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    s1, s2 = np.atleast_2d(np.asarray(s1, dtype=np.float64)), np.atleast_2d(np.asarray(s2, dtype=np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shapes do not match: mu {mu1.shape} {mu2.shape}, sigma {s1.shape} {s2.shape}")
    diff = mu1 - mu2
    d = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2)
    return max(float(d), 0.0)


def frechet_distance_of_features(a, b):
    """The Frechet distance between Gaussians fitted to two (N, D) feature arrays."""
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
