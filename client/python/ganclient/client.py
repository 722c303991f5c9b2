"""A Python client of gan-server (proto/gan/v1/service.proto) over grpcio stubs.

The protobuf and gRPC modules are generated from proto/ by client/python/generate.sh; they are
imported from $GANCLIENT_GEN_DIR, or from <repo>/build/python when it is unset.

Images are numpy arrays in NHWC order, as on the wire: uint8 in 0..255 or float32 in [-1, 1].
Every failed call raises ganclient.Error with the gRPC code name ("INVALID_ARGUMENT", ...) and the
server's message. A Client is safe to share between threads (grpcio channels are).
"""

import importlib
import os
import sys
import time

import grpc
import numpy as np

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
GEN_DIR = os.environ.get("GANCLIENT_GEN_DIR") or os.path.join(_REPO, "build", "python")


def _import_generated():
    if GEN_DIR not in sys.path:
        sys.path.insert(0, GEN_DIR)
    try:
        return (importlib.import_module("gan.v1.spec_pb2"),
                importlib.import_module("gan.v1.service_pb2"),
                importlib.import_module("gan.v1.service_pb2_grpc"))
    except ImportError as e:
        raise ImportError(
            f"ganclient: generated modules not found in {GEN_DIR} ({e}); run "
            "client/python/generate.sh [OUT] and set GANCLIENT_GEN_DIR=OUT") from e


spec_pb2, service_pb2, service_pb2_grpc = _import_generated()

# Short names accepted for a discriminator hidden activation; LeakyReLU gets the seed's slope.
_ACTIVATIONS = {
    "linear": (spec_pb2.ACTIVATION_FUNCTION_LINEAR, 0.0),
    "relu": (spec_pb2.ACTIVATION_FUNCTION_RELU, 0.0),
    "leaky_relu": (spec_pb2.ACTIVATION_FUNCTION_LEAKY_RELU, 0.2),
    "sigmoid": (spec_pb2.ACTIVATION_FUNCTION_SIGMOID, 0.0),
    "tanh": (spec_pb2.ACTIVATION_FUNCTION_TANH, 0.0),
}


class Error(Exception):
    """A failed call: `code` is the gRPC status code name, `message` the server's explanation."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _error_from_rpc(e):
    return Error(e.code().name, e.details() or "")


def _invalid(message):
    return Error("INVALID_ARGUMENT", message)


def _activation(value):
    """'leaky_relu' | 'relu' | 'tanh' | 'sigmoid' | 'linear', or an Activation message."""
    if isinstance(value, spec_pb2.Activation):
        return value
    try:
        function, alpha = _ACTIVATIONS[str(value).lower()]
    except KeyError:
        raise _invalid(f"hidden_activation: unknown '{value}' ({', '.join(_ACTIVATIONS)})")
    return spec_pb2.Activation(function=function, alpha=alpha)


def _health_name(enum, value, prefix):
    """LAYER_HEALTH_VANISHING -> 'vanishing'; 'unspecified' when the server did not assess it."""
    return enum.Name(value)[len(prefix):].lower()


def step_metrics_to_dict(m):
    """A StepMetrics message as the dict that watch() yields.

    Besides the losses: per layer (keyed by name, e.g. "discriminator.0") the weight-gradient norm
    (`gradient_norms`), the weight's norm (`weight_norms`), their ratio (`relative_gradient_norms`)
    and its health flag over the job's window (`gradient_health`: 'ok', 'vanishing', 'exploding',
    or 'unspecified' where not assessed); and `discriminator_health` ('ok', 'stalled',
    'collapsed', or 'unspecified'). JobSpec.gradient_health (submit(gradient_health={...})) sets
    the thresholds; docs/seed_question.md explains the defaults.
    """
    return {
        "step": m.step,
        "epoch": m.epoch,
        "d_loss": m.d_loss,
        "g_loss": m.g_loss,
        "d_real": m.d_real,
        "d_fake": m.d_fake,
        "d_accuracy": m.d_accuracy,
        "images_per_second": m.images_per_second,
        "gradient_norms": {g.layer: g.norm for g in m.gradient_norms},
        "weight_norms": {g.layer: g.weight_norm for g in m.gradient_norms},
        "relative_gradient_norms": {g.layer: g.relative_norm for g in m.gradient_norms},
        "gradient_health": {
            g.layer: _health_name(service_pb2.LayerHealth, g.health, "LAYER_HEALTH_")
            for g in m.gradient_norms
        },
        "discriminator_health": _health_name(service_pb2.DiscriminatorHealth,
                                             m.discriminator_health, "DISCRIMINATOR_HEALTH_"),
    }


def _read(path):
    with open(path, "rb") as f:
        return f.read()


class Client:
    """Calls gan-server's TrainingService and ScoringService at `address`.

    `timeout` (seconds) bounds every unary call; watch() streams have no deadline.
    `token` (default: the GAN_TOKEN environment variable) is sent as
    `authorization: Bearer <token>` with every call. With `tls_ca` (a PEM file of the CA that
    signed the server's certificate) the channel uses TLS; `tls_cert` and `tls_key` add a client
    certificate for a server that requires mutual TLS.
    """

    # Reconnect backoff of watch(): doubles from the first to the last value.
    _BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 8.0

    def __init__(self, address="127.0.0.1:50051", timeout=30, token=None, tls_ca=None,
                 tls_cert=None, tls_key=None):
        self.address = address
        self.timeout = timeout
        token = token if token is not None else os.environ.get("GAN_TOKEN", "")
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        options = [
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20),
        ]
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if tls_ca is not None or tls_cert is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(tls_ca) if tls_ca else None,
                private_key=_read(tls_key) if tls_key else None,
                certificate_chain=_read(tls_cert) if tls_cert else None)
            self._channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._training = service_pb2_grpc.TrainingServiceStub(self._channel)
        self._scoring = service_pb2_grpc.ScoringServiceStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise _error_from_rpc(e) from None

    # --- jobs ------------------------------------------------------------------------------

    def submit(self, preset="seed", steps=None, epochs=None, dataset=None, batch_size=None,
               seed=None, hidden_activation=None, request_id=None, **spec_fields):
        """Creates a training job and returns its id.

        Exactly one of `steps` and `epochs`. `hidden_activation` replaces the discriminator's
        hidden activations. Other JobSpec fields (checkpoint_every, metrics_every,
        generator_optimizer={...}, gan=GanSpec, ...) pass through `spec_fields`.
        """
        fields = dict(preset=preset, steps=steps, epochs=epochs, dataset=dataset,
                      batch_size=batch_size, seed=seed, **spec_fields)
        fields = {k: v for k, v in fields.items() if v is not None}
        if hidden_activation is not None:
            fields["discriminator_hidden_activation"] = _activation(hidden_activation)
        try:
            spec = service_pb2.JobSpec(**fields)
        except (ValueError, TypeError) as e:
            raise _invalid(f"spec: {e}") from None
        request = service_pb2.SubmitJobRequest(spec=spec, request_id=request_id or "")
        return self._call(self._training.SubmitJob, request).job_id

    def get(self, job_id):
        """The job (a gan.v1.Job message; service_pb2.JobState.Name(job.state) names its state)."""
        return self._call(self._training.GetJob, service_pb2.GetJobRequest(job_id=job_id))

    def cancel(self, job_id):
        """Cancels a queued or running job; returns the Job. FAILED_PRECONDITION if it ended.

        A queued job comes back CANCELLED. A running one comes back still RUNNING: the call does
        not wait for its training step, and the job turns CANCELLED (with a checkpoint) when the
        step ends; watch() ends with that state.
        """
        return self._call(self._training.CancelJob, service_pb2.CancelJobRequest(job_id=job_id))

    def watch(self, job_id, from_step=0, max_reconnect_seconds=60.0):
        """Yields a dict per training step from `from_step` (see step_metrics_to_dict) until the
        job ends. A stream dropped with UNAVAILABLE (server restart, lost connection) is
        reopened with backoff after the last step yielded; after `max_reconnect_seconds` without
        an answer, Error is raised.
        """
        next_step = from_step
        backoff = self._BACKOFF_FIRST
        failing_since = None
        while True:
            request = service_pb2.StreamMetricsRequest(job_id=job_id, from_step=next_step)
            try:
                for event in self._training.StreamMetrics(request, metadata=self._metadata):
                    backoff, failing_since = self._BACKOFF_FIRST, None
                    kind = event.WhichOneof("event")
                    if kind == "finished":
                        return
                    if kind == "step":
                        next_step = event.step.step + 1
                        yield step_metrics_to_dict(event.step)
                status, message = "UNAVAILABLE", "the stream closed before the job ended"
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise _error_from_rpc(e) from None
                status, message = e.code().name, e.details() or ""
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since > max_reconnect_seconds:
                raise Error(status, message)
            time.sleep(backoff)
            backoff = min(backoff * 2, self._BACKOFF_MAX)

    # --- images ----------------------------------------------------------------------------

    def score(self, job_id, images, checkpoint_step=0):
        """D's probability that each image is real: (N,) float32 for images (N,H,W,C) (or
        (N,H,W), one channel), uint8 in 0..255 or float in [-1, 1]."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., np.newaxis]
        if images.ndim != 4:
            raise _invalid(f"images: shape {images.shape}, want (N, H, W, C)")
        request = service_pb2.ScoreRequest(job_id=job_id, checkpoint_step=checkpoint_step,
                                           shape=list(images.shape))
        if images.dtype == np.uint8:
            request.uint8_pixels = np.ascontiguousarray(images).tobytes()
        elif np.issubdtype(images.dtype, np.floating):
            request.float_pixels = np.ascontiguousarray(images, dtype="<f4").tobytes()
        else:
            raise _invalid(f"images: dtype {images.dtype}, want uint8 or float32")
        response = self._call(self._scoring.Score, request)
        return np.array(response.probabilities, dtype=np.float32)

    def sample(self, job_id, count, seed=0, checkpoint_step=0):
        """`count` images from the job's generator as uint8 (count, H, W, C); the same seed and
        checkpoint give the same images."""
        request = service_pb2.SampleImagesRequest(job_id=job_id, count=count, seed=seed,
                                                  checkpoint_step=checkpoint_step)
        r = self._call(self._training.SampleImages, request)
        pixels = np.frombuffer(r.pixels, dtype=np.uint8)
        return pixels.reshape(r.count, r.height, r.width, r.channels)
