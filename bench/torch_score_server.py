#!/usr/bin/python3
"""A PyTorch peer of gan-server's scoring: answers gan.v1.ScoringService.Score with a checkpoint's
discriminator loaded into PyTorch, behind Python grpcio's thread-pool server.

It exists to compare serving stacks with `ganctl bench score` on the same checkpoint and the same
requests (docs/performance-serving.md):

    /usr/bin/python3 bench/torch_score_server.py CHECKPOINT --listen 127.0.0.1:50061
    build/bin/ganctl --server 127.0.0.1:50061 bench score --job ANY --concurrency 32 --duration 10

Run with Debian's python3 (python3-torch, python3-grpcio, protobuf-compiler-grpc). The networks
are built from the checkpoint's spec by scripts/load_checkpoint_in_torch.py (strict loading), in
eval mode. Each request runs alone (no batching across requests), as a plain grpcio service would;
job_id and checkpoint_step are ignored. Shapes and payload sizes are checked like gan-server's
(INVALID_ARGUMENT naming the field).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent import futures

import numpy as np
import torch
import torch.nn as nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(REPO, "scripts"))
import load_checkpoint_in_torch as loader  # noqa: E402
import make_reference_data as ref  # noqa: E402


def import_stubs():
    """Generates the gan.v1 Python modules (client/python/generate.sh) into a temporary
    directory and imports them."""
    out = tempfile.mkdtemp(prefix="gan-stubs-")
    subprocess.run(["bash", os.path.join(REPO, "client/python/generate.sh"), out], check=True)
    sys.path.insert(0, out)
    import grpc  # noqa: F401
    from gan.v1 import service_pb2, service_pb2_grpc
    return service_pb2, service_pb2_grpc


def load_discriminator(path):
    arrays, metadata = ref.read_safetensors(path)
    if "spec" not in metadata:
        raise SystemExit(f"{path}: no 'spec' metadata")
    spec = json.loads(metadata["spec"])
    _, D, _ = loader.networks_from_spec(spec)
    state = {name[len("discriminator."):]: torch.from_numpy(a.copy())
             for name, a in arrays.items() if name.startswith("discriminator.")}
    D.load_state_dict(state, strict=True)
    D.eval()
    # The logit is the output before a final sigmoid entry.
    logit_net = D[:-1] if isinstance(D[-1], nn.Sigmoid) else D
    image = loader._get(spec, "image_shape")
    shape = (image["height"], image["width"], image.get("channels", 1))
    return logit_net, shape, int(metadata.get("step", 0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a step-<N>.safetensors file written by gan-server")
    parser.add_argument("--listen", default="127.0.0.1:50061")
    parser.add_argument("--threads", type=int, default=8, help="grpcio worker threads")
    parser.add_argument("--torch_threads", type=int, default=os.cpu_count(),
                        help="intra-op threads of each forward pass")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)

    import grpc
    service_pb2, service_pb2_grpc = import_stubs()
    net, (height, width, channels), step = load_discriminator(args.checkpoint)

    class Scoring(service_pb2_grpc.ScoringServiceServicer):
        def Score(self, request, context):
            shape = list(request.shape)
            if len(shape) != 4 or any(d <= 0 for d in shape):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"shape: expected 4 positive dimensions (N, H, W, C), got {shape}")
            if shape[1:] != [height, width, channels]:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"shape: expected (N, {height}, {width}, {channels}), got {shape}")
            n = shape[0]
            elements = n * height * width * channels
            which = request.WhichOneof("pixels")
            if which == "uint8_pixels":
                if len(request.uint8_pixels) != elements:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"uint8_pixels: {len(request.uint8_pixels)} bytes, needs {elements}")
                x = np.frombuffer(request.uint8_pixels, dtype=np.uint8).astype(np.float32)
                x = x / 127.5 - 1.0
            elif which == "float_pixels":
                if len(request.float_pixels) != 4 * elements:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"float_pixels: {len(request.float_pixels)} bytes, needs {4 * elements}")
                x = np.frombuffer(request.float_pixels, dtype="<f4")
            else:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              "pixels: set uint8_pixels or float_pixels")
            images = torch.from_numpy(np.ascontiguousarray(
                x.reshape(n, height, width, channels).transpose(0, 3, 1, 2)))
            with torch.no_grad():
                logits = net(images).reshape(n)
                probabilities = torch.sigmoid(logits)
            return service_pb2.ScoreResponse(logits=logits.tolist(),
                                             probabilities=probabilities.tolist(),
                                             checkpoint_step=step)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.threads),
                         options=[("grpc.max_receive_message_length", 16 << 20)])
    service_pb2_grpc.add_ScoringServiceServicer_to_server(Scoring(), server)
    port = server.add_insecure_port(args.listen)
    if port == 0:
        raise SystemExit(f"--listen {args.listen}: cannot listen")
    server.start()
    print(f"torch_score_server listening on {args.listen} (port {port}), torch "
          f"{torch.__version__}, {args.threads} grpc threads, {args.torch_threads} torch threads",
          flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
