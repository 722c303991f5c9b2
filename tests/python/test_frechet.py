#!/usr/bin/python3
"""Checks the Frechet distance of scripts/frechet.py (numpy only; no torch, no server):

    /usr/bin/python3 -m unittest discover -s tests/python -v
    ctest --test-dir build -R python_frechet    # registered in tests/CMakeLists.txt, label python
"""

import os
import sys
import unittest

# One BLAS thread: on a busy 2-core machine OpenBLAS's spinning threads make these small
# eigendecompositions take seconds instead of milliseconds. Set before numpy loads OpenBLAS.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ[_var] = "1"
import numpy as np  # noqa: E402

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import frechet  # noqa: E402


def random_covariance(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


class FrechetDistanceTest(unittest.TestCase):
    def test_identical_gaussians_are_at_zero(self):
        rng = np.random.default_rng(1)
        for d in (1, 8, 128):
            mu, s = rng.standard_normal(d), random_covariance(rng, d)
            self.assertAlmostEqual(frechet.frechet_distance(mu, s, mu, s), 0.0,
                                   delta=1e-9 * np.trace(s))

    def test_diagonal_gaussians_match_the_closed_form(self):
        # Commuting (diagonal) covariances: d^2 = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
        rng = np.random.default_rng(2)
        d = 16
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
        expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
        got = frechet.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
        self.assertAlmostEqual(got, expected, delta=1e-10 * expected)
        # One dimension: (mu1 - mu2)^2 + (sigma1 - sigma2)^2.
        self.assertAlmostEqual(frechet.frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]),
                               9.0 + 1.0, places=12)

    def test_non_commuting_2x2_matches_the_closed_form(self):
        # For 2x2 matrices with non-negative eigenvalues, Tr(sqrt(P)) = sqrt(Tr P + 2 sqrt(det P));
        # P = S1 S2 here, which does not commute and is not symmetric.
        s1 = np.array([[2.0, 0.9], [0.9, 1.0]])
        s2 = np.array([[1.0, -0.4], [-0.4, 3.0]])
        p = s1 @ s2
        tr_sqrt = np.sqrt(np.trace(p) + 2 * np.sqrt(np.linalg.det(p)))
        expected = np.trace(s1) + np.trace(s2) - 2 * tr_sqrt + 0.5 ** 2
        got = frechet.frechet_distance([0.0, 0.0], s1, [0.5, 0.0], s2)
        self.assertAlmostEqual(got, expected, places=12)
        self.assertAlmostEqual(frechet.frechet_distance([0.5, 0.0], s2, [0.0, 0.0], s1), got,
                               places=12)

    def test_singular_covariances_and_samples(self):
        # Rank-deficient covariances (fewer samples than dimensions) stay finite and >= 0.
        rng = np.random.default_rng(3)
        x, y = rng.standard_normal((20, 64)), rng.standard_normal((20, 64)) + 1.0
        self.assertGreaterEqual(frechet.frechet_distance_of_features(x, x), 0.0)
        self.assertLess(frechet.frechet_distance_of_features(x, x), 1e-6)
        shifted = frechet.frechet_distance_of_features(x, y)  # mean shift 1 in 64 dimensions
        self.assertTrue(np.isfinite(shifted) and shifted > 30.0, shifted)
        # Large samples from one Gaussian come close; a mean shift of 1 per dimension adds ~D.
        a, b = rng.standard_normal((4000, 8)), rng.standard_normal((4000, 8))
        self.assertLess(frechet.frechet_distance_of_features(a, b), 0.05)
        self.assertAlmostEqual(frechet.frechet_distance_of_features(a, b + 1.0), 8.0, delta=0.4)

    def test_rejects_mismatched_shapes(self):
        with self.assertRaises(ValueError):
            frechet.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
        with self.assertRaises(ValueError):
            frechet.gaussian_stats(np.zeros((1, 4)))


if __name__ == "__main__":
    unittest.main()
