"""Python client of gan-server: submit GAN training jobs, stream their metrics, score and sample.

    import ganclient
    with ganclient.Client("127.0.0.1:50051") as c:
        job = c.submit(preset="seed-dcgan", steps=300, dataset="fashion-mnist")
        for m in c.watch(job):
            print(m["step"], m["d_loss"], m["gradient_norms"]["discriminator.0"])
        images = c.sample(job, 16, seed=1)   # uint8 (16, 28, 28, 1)
        p = c.score(job, images)             # float32 (16,)
"""

from .client import Client, Error, service_pb2, spec_pb2, step_metrics_to_dict

__all__ = ["Client", "Error", "service_pb2", "spec_pb2", "step_metrics_to_dict"]
