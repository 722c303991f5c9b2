"""ganclient against a real gan-server on synthetic data: one tiny job (seed-dcgan, batch 8,
3 steps) shared by most tests, and a watch() that outlives a server restart.

Run: client/python/run_tests.sh [BUILD_DIR]   (generates the stubs, then unittest discover)
"""

import os
import shutil
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import ganclient  # noqa: E402
from ganclient.server import LocalServer  # noqa: E402

STEPS = 3


class ClientTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.data_dir = tempfile.mkdtemp(prefix="ganclient-test-")
        cls.server = LocalServer(cls.data_dir, "--default_dataset", "synthetic",
                                 "--threads_per_job", "1").start()
        cls.client = ganclient.Client(cls.server.address, timeout=30)
        cls.job_id = cls.client.submit(preset="seed-dcgan", batch_size=8, steps=STEPS, seed=7)
        cls.events = list(cls.client.watch(cls.job_id))

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.exit_status = cls.server.stop()
        shutil.rmtree(cls.data_dir, ignore_errors=True)
        if cls.exit_status != 0:
            raise AssertionError(f"gan-server exited with {cls.exit_status} after SIGTERM")

    def test_watch_yields_every_step_then_ends(self):
        self.assertEqual([e["step"] for e in self.events], list(range(STEPS)))
        job = self.client.get(self.job_id)
        self.assertEqual(ganclient.service_pb2.JobState.Name(job.state), "JOB_STATE_SUCCEEDED")
        self.assertEqual(job.step, STEPS)
        first = self.events[0]
        for key in ("epoch", "d_loss", "g_loss", "d_real", "d_fake", "d_accuracy",
                    "images_per_second"):
            self.assertTrue(np.isfinite(first[key]), key)
        # Every weighted layer of the seed discriminator reports its gradient norm.
        for layer in ("discriminator.0", "discriminator.2", "discriminator.5", "discriminator.8"):
            self.assertGreater(first["gradient_norms"][layer], 0, layer)
            self.assertGreater(first["weight_norms"][layer], 0, layer)
            self.assertAlmostEqual(first["relative_gradient_norms"][layer],
                                   first["gradient_norms"][layer] / first["weight_norms"][layer],
                                   places=12, msg=layer)
        # Three steps never fill the default window: every assessed flag is OK; BatchNorm's
        # scale (generator.1) is not assessed.
        for event in self.events:
            self.assertEqual(event["discriminator_health"], "ok")
            self.assertEqual(event["gradient_health"]["discriminator.0"], "ok")
            self.assertEqual(event["gradient_health"]["generator.1"], "unspecified")

    def test_gradient_health_flags_follow_the_spec(self):
        # A window of 2 steps and a vanishing threshold above any real ratio: every Conv and
        # Dense layer is VANISHING from the second step on, and not before.
        job = self.client.submit(preset="seed-dcgan", batch_size=8, steps=3, seed=7,
                                 gradient_health={"window_steps": 2, "vanishing_ratio": 1000.0,
                                                  "exploding_ratio": 1e6})
        events = list(self.client.watch(job))
        self.assertEqual([e["step"] for e in events], [0, 1, 2])
        self.assertEqual(events[0]["gradient_health"]["discriminator.0"], "ok")
        for event in events[1:]:
            for layer in ("discriminator.0", "discriminator.8", "generator.0"):
                self.assertEqual(event["gradient_health"][layer], "vanishing", layer)
            self.assertEqual(event["gradient_health"]["generator.1"], "unspecified")
        with self.assertRaises(ganclient.Error) as e:
            self.client.submit(preset="seed-dcgan", batch_size=8, steps=3,
                               gradient_health={"window_steps": -1})
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertIn("gradient_health.window_steps", e.exception.message)
        with self.assertRaises(ganclient.Error) as e:
            self.client.submit(preset="seed-dcgan", batch_size=8, steps=3,
                               gradient_health={"vanishing_ratio": -0.5})
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertIn("gradient_health.vanishing_ratio", e.exception.message)

    def test_warm_start_and_pytorch_defaults_pass_through_submit(self):
        job_id = self.client.submit(preset="seed-dcgan", batch_size=8, steps=2, seed=7,
                                    init_from={"job_id": self.job_id, "checkpoint_step": STEPS},
                                    pytorch_defaults=True)
        events = list(self.client.watch(job_id))
        self.assertEqual([e["step"] for e in events], [0, 1])
        job = self.client.get(job_id)
        self.assertEqual(job.spec.init_from.job_id, self.job_id)
        self.assertTrue(job.spec.pytorch_defaults)
        self.assertEqual(ganclient.service_pb2.JobState.Name(job.state), "JOB_STATE_SUCCEEDED")
        # A step the source job never wrote is refused at submission.
        with self.assertRaises(ganclient.Error) as raised:
            self.client.submit(preset="seed-dcgan", batch_size=8, steps=2,
                               init_from={"job_id": self.job_id, "checkpoint_step": 999})
        self.assertEqual(raised.exception.code, "NOT_FOUND")

    def test_watch_resumes_from_a_step(self):
        self.assertEqual([e["step"] for e in self.client.watch(self.job_id, from_step=1)],
                         list(range(1, STEPS)))

    def test_score_gives_probabilities(self):
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(5, 28, 28, 1), dtype=np.uint8)
        p = self.client.score(self.job_id, images)
        self.assertEqual(p.shape, (5,))
        self.assertTrue(np.all((p > 0) & (p < 1)), p)
        # float32 in [-1, 1] is the same image as uint8 x / 127.5 - 1.
        p_float = self.client.score(self.job_id, images.astype(np.float32) / 127.5 - 1)
        np.testing.assert_allclose(p_float, p, rtol=1e-5, atol=1e-6)

    def test_sample_is_deterministic_per_seed(self):
        a = self.client.sample(self.job_id, 4, seed=1)
        self.assertEqual(a.shape, (4, 28, 28, 1))
        self.assertEqual(a.dtype, np.uint8)
        np.testing.assert_array_equal(self.client.sample(self.job_id, 4, seed=1), a)
        self.assertFalse(np.array_equal(self.client.sample(self.job_id, 4, seed=2), a))

    def test_bad_requests_raise_error_with_code(self):
        with self.assertRaises(ganclient.Error) as e:
            self.client.submit(preset="seed-dcgan", batch_size=8, steps=0)
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        with self.assertRaises(ganclient.Error) as e:
            self.client.submit(preset="no-such-preset", steps=1)
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertIn("preset", e.exception.message)
        with self.assertRaises(ganclient.Error) as e:
            self.client.score(self.job_id, np.zeros((2, 27, 28, 1), np.uint8))
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        with self.assertRaises(ganclient.Error) as e:
            self.client.get("no-such-job")
        self.assertEqual(e.exception.code, "NOT_FOUND")

    def test_cancel_of_an_ended_job_is_failed_precondition(self):
        with self.assertRaises(ganclient.Error) as e:
            self.client.cancel(self.job_id)
        self.assertEqual(e.exception.code, "FAILED_PRECONDITION")


class WatchReconnectTest(unittest.TestCase):

    def test_watch_survives_a_server_restart(self):
        steps = 40
        data_dir = tempfile.mkdtemp(prefix="ganclient-test-")
        self.addCleanup(shutil.rmtree, data_dir, ignore_errors=True)
        args = ("--default_dataset", "synthetic", "--threads_per_job", "1")
        server = LocalServer(data_dir, *args).start()
        self.addCleanup(lambda: server.stop())
        with ganclient.Client(server.address) as client:
            job_id = client.submit(preset="seed-dcgan", batch_size=8, steps=steps, seed=3)
            seen = []
            for event in client.watch(job_id):
                seen.append(event["step"])
                if event["step"] == 2:
                    self.assertLess(client.get(job_id).step, steps, "job ended too soon")
                    self.assertEqual(server.stop(), 0)
                    # Same port: the stream reconnects to the new process and resumes.
                    server = LocalServer(data_dir, *args, listen=server.address).start()
            self.assertEqual(seen, list(range(steps)))
            self.assertEqual(ganclient.service_pb2.JobState.Name(client.get(job_id).state),
                             "JOB_STATE_SUCCEEDED")
        self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main()


class SecureServerTest(unittest.TestCase):
    """A server with TLS and bearer tokens (scripts/make_secrets.sh): the client's token= and
    tls_ca= work, a call without a token is UNAUTHENTICATED, a plaintext client fails."""

    @classmethod
    def setUpClass(cls):
        if shutil.which("openssl") is None:
            raise unittest.SkipTest("openssl is missing (scripts/setup.sh --tests installs it)")
        cls.dir = tempfile.mkdtemp(prefix="ganclient-secure-")
        repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
        secrets = os.path.join(cls.dir, "secrets")
        import subprocess
        subprocess.run(["bash", os.path.join(repo, "scripts", "make_secrets.sh"), secrets],
                       check=True, stdout=subprocess.DEVNULL)
        cls.secrets = secrets
        cls.server = LocalServer(os.path.join(cls.dir, "data"), "--default_dataset", "synthetic",
                                 "--threads_per_job", "1", "--metrics_listen=",
                                 "--tls_cert", os.path.join(secrets, "server.pem"),
                                 "--tls_key", os.path.join(secrets, "server.key"),
                                 "--auth_tokens", os.path.join(secrets, "tokens")).start()
        # 127.0.0.1: the certificate names it, and a minimal system may not resolve "localhost".
        cls.address = f"127.0.0.1:{cls.server.port}"

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def token(self, role):
        with open(os.path.join(self.secrets, f"token.{role}")) as f:
            return f.read().strip()

    def test_token_and_tls(self):
        ca = os.path.join(self.secrets, "ca.pem")
        with ganclient.Client(self.address, token=self.token("trainer"), tls_ca=ca) as client:
            job_id = client.submit(preset="seed-dcgan", batch_size=8, steps=1, seed=1)
            self.assertEqual(client.get(job_id).principal, "trainer-user")
        with ganclient.Client(self.address, token="", tls_ca=ca) as anonymous:
            with self.assertRaises(ganclient.Error) as e:
                anonymous.get(job_id)
            self.assertEqual(e.exception.code, "UNAUTHENTICATED")
        with ganclient.Client(self.address, token=self.token("viewer"), tls_ca=ca) as viewer:
            with self.assertRaises(ganclient.Error) as e:
                viewer.submit(preset="seed-dcgan", batch_size=8, steps=1)
            self.assertEqual(e.exception.code, "PERMISSION_DENIED")
        with ganclient.Client(self.address, token=self.token("trainer"), timeout=5) as plain:
            with self.assertRaises(ganclient.Error) as e:
                plain.get(job_id)
            self.assertEqual(e.exception.code, "UNAVAILABLE")
