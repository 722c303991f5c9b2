#!/usr/bin/python3
"""Sample quality of Fashion-MNIST GAN samples: a Frechet distance on a small classifier's features.

Run with Debian's PyTorch (`bash scripts/setup.sh --with-torch`; the `python3` on PATH may have no
torch):

    /usr/bin/python3 scripts/sample_quality.py train-classifier      # rewrites the committed weights
    /usr/bin/python3 scripts/sample_quality.py baselines             # real vs real, noise: the scale
    /usr/bin/python3 scripts/sample_quality.py fid samples.png       # ganctl sample's PNG grid
    /usr/bin/python3 scripts/sample_quality.py fid peer.idx          # torch_peer.py --save_samples
    /usr/bin/python3 scripts/sample_quality.py fid --checkpoint runs/x/checkpoints/step-500.safetensors

The measure ("FID" with a Fashion-MNIST classifier in place of Inception v3):
  * the classifier: Conv 16 5x5 same + ReLU + MaxPool 2, Conv 32 5x5 same + ReLU + MaxPool 2,
    Flatten, Dense 128 + ReLU (the features), Dropout 0.3, Dense 10. `train-classifier` trains it
    with a fixed seed (torch seed 1, 4 epochs of Adam 1e-3 at batch 128 over the 60,000 training
    images, 2 threads, about 6.5 minutes of CPU time; 90.29% test accuracy) and writes its
    weights as safetensors with the test accuracy in the metadata. The weights in
    scripts/sample_quality_classifier.safetensors (0.86 MB) are committed, so distances from
    different days use the same features; a retrained file may differ in low-order bits on
    another CPU or thread count, and distances are comparable only when computed with the same
    weights file (its SHA-256 is printed with every result).
  * the features: the 128 ReLU outputs of the Dense 128 layer (eval mode) of images scaled to
    [-1, 1] as the trainer scales them (pixel / 127.5 - 1).
  * the distance: the squared Frechet distance between Gaussians fitted to the features of N
    generated images and of N real test images (scripts/frechet.py: mean and covariance in
    float64; Tr((S1 S2)^1/2) from the eigenvalues of the symmetric S1^1/2 S2 S1^1/2, S1^1/2 from
    numpy's eigendecomposition; no scipy). Lower is better; 0 for identical statistics.
  * the reference: the 10,000 test images are split by a fixed permutation (numpy seed 0) into
    halves A and B; generated images are compared with the first N of A. The distance depends on
    N (it is biased upwards for small N), so compare only figures at the same N (default 2000,
    at most 5000). `fid` also prints the real-vs-real baseline at that N (the first N of B
    against the same N of A), which is the floor a perfect generator would reach.

Inputs to `fid` (every image 28x28 grey; N images are used, the first N in file order):
  * PNG: a single 28x28 image, or a grid as gan-train (`samples.png`, 64 images) and
    `ganctl sample --count N --columns C` write it: 28x28 tiles with a 2-pixel border
    (width = columns * 30 + 2). Tiles after the last image of a partly filled last row are
    black and are dropped (or give --count). RGB(A) PNGs are converted to grey as ganctl does
    ((77 r + 150 g + 29 b) >> 8). A directory: every *.png in it, in name order.
  * IDX (`*-idx3-ubyte`, optionally .gz): uint8 images, as Fashion-MNIST itself and
    `bench/torch_peer.py --save_samples` write them.
  * .npy: uint8 pixels (0..255), or floats in the generator's range [-1, 1]; shape (N, 28, 28),
    (N, 1, 28, 28) or (N, 28, 28, 1).
  * --checkpoint FILE: a safetensors checkpoint of gan-train or a gan-server job; the generator is
    built from the checkpoint's spec (scripts/load_checkpoint_in_torch.py), run in eval mode
    (BatchNorm running statistics, as ganctl sample) on the spec's noise drawn with torch seed
    --seed, and its output rounded to uint8 pixels as the service does.

--json prints one JSON line instead of the text report.
"""

import argparse
import glob
import gzip
import hashlib
import json
import os
import struct
import sys
import time
import zlib

import numpy as np
import torch
import torch.nn as nn

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import frechet  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"
DEFAULT_CLASSIFIER = os.path.join(HERE, "sample_quality_classifier.safetensors")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")
HALF = 5000  # the test set's halves A and B


# ------------------------------------------------------------------------------------------------
# Reading images
# ------------------------------------------------------------------------------------------------

def read_idx(path):
    """An IDX file (optionally gzip-compressed) of uint8 values as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    count = int(np.prod(dims, dtype=np.int64))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != count:
        raise ValueError(f"{path}: {data.size} bytes of data for dimensions {dims}")
    return data.reshape(dims)


def write_idx(path, images):
    """uint8 (N, H, W) images as an IDX3 file."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, images.ndim))
        f.write(struct.pack(f">{images.ndim}I", *images.shape))
        f.write(images.tobytes())


def _unfilter(data, width, height, bpp):
    """PNG scanline reconstruction (filter method 0) of `height` rows of width * bpp bytes."""
    stride = width * bpp
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    pos = 0
    for y in range(height):
        kind = data[pos]
        row = np.frombuffer(data, dtype=np.uint8, count=stride, offset=pos + 1).astype(np.int64)
        pos += 1 + stride
        if kind == 0:
            rec = row
        elif kind == 1:  # Sub: a running sum per byte of a pixel
            rec = np.cumsum(row.reshape(width, bpp), axis=0).reshape(-1) % 256
        elif kind == 2:  # Up
            rec = (row + prev) % 256
        elif kind in (3, 4):  # Average, Paeth: sequential along the row
            r, p = row.tolist(), prev.tolist()
            for x in range(stride):
                a = r[x - bpp] if x >= bpp else 0
                b = p[x]
                if kind == 3:
                    r[x] = (r[x] + ((a + b) >> 1)) & 255
                else:
                    c = p[x - bpp] if x >= bpp else 0
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                    r[x] = (r[x] + pred) & 255
            rec = np.array(r, dtype=np.int64)
        else:
            raise ValueError(f"PNG row {y}: unknown filter type {kind}")
        out[y] = rec
        prev = rec
    return out


def read_png(path):
    """A non-interlaced 8-bit grey, grey+alpha, RGB or RGBA PNG as (H, W) uint8 grey."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, header, idat = 8, None, []
    while pos + 8 <= len(raw):
        length, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        body = raw[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError(f"{path}: no IHDR chunk")
    width, height, depth, color, _, _, interlace = header
    channels = {0: 1, 4: 2, 2: 3, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace != 0:
        raise ValueError(f"{path}: only non-interlaced 8-bit grey/RGB(A) PNGs are read "
                         f"(bit depth {depth}, colour type {color}, interlace {interlace})")
    pixels = _unfilter(zlib.decompress(b"".join(idat)), width, height, channels)
    pixels = pixels.reshape(height, width, channels).astype(np.uint32)
    if channels <= 2:
        return pixels[:, :, 0].astype(np.uint8)
    return ((77 * pixels[:, :, 0] + 150 * pixels[:, :, 1] + 29 * pixels[:, :, 2]) >> 8).astype(np.uint8)


def split_grid(image, path, count=None, size=28, border=2):
    """The tiles of a PNG grid written by io/png.cc WritePngGrid (2-pixel black border)."""
    h, w = image.shape
    if (h, w) == (size, size):
        return image[None]
    cell = size + border
    if (h - border) % cell or (w - border) % cell:
        raise ValueError(f"{path}: {w}x{h} is neither a {size}x{size} image nor a grid of "
                         f"{size}x{size} tiles with a {border}-pixel border")
    rows, cols = (h - border) // cell, (w - border) // cell
    tiles = [image[border + r * cell:border + r * cell + size, border + c * cell:border + c * cell + size]
             for r in range(rows) for c in range(cols)]
    if count is None:
        # A partly filled last row ends in black tiles that hold no image.
        last = len(tiles)
        while last > (rows - 1) * cols and not tiles[last - 1].any():
            last -= 1
        tiles = tiles[:last]
    return np.stack(tiles)


def load_images(paths, count=None):
    """Images from PNG/IDX/.npy files and PNG directories as float32 (N, 1, 28, 28) in [-1, 1]."""
    parts = []
    files = []
    for path in paths:
        files += sorted(glob.glob(os.path.join(path, "*.png"))) if os.path.isdir(path) else [path]
    for path in files:
        if path.endswith(".npy"):
            a = np.load(path)
            if a.ndim == 4 and a.shape[1] == 1:
                a = a[:, 0]
            elif a.ndim == 4 and a.shape[3] == 1:
                a = a[:, :, :, 0]
            if a.dtype != np.uint8:
                a = a.astype(np.float32)
                if a.size and (a.min() < -1.001 or a.max() > 1.001):
                    raise ValueError(f"{path}: float images must lie in [-1, 1] "
                                     f"(found {a.min():.3f} .. {a.max():.3f})")
                a = np.round((np.clip(a, -1, 1) + 1) * 127.5).astype(np.uint8)
        elif path.endswith(".png"):
            a = split_grid(read_png(path), path, count)
        else:
            a = read_idx(path)
        if a.ndim != 3 or a.shape[1:] != (28, 28):
            raise ValueError(f"{path}: images of shape {a.shape[1:]}, expected 28x28")
        parts.append(a)
    if not parts:
        raise ValueError("no images given")
    pixels = np.concatenate(parts)
    if count is not None:
        if len(pixels) < count:
            raise ValueError(f"--count {count}, but the inputs hold {len(pixels)} images")
        pixels = pixels[:count]
    return to_model_range(pixels)


def to_model_range(pixels):
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [-1, 1], as core/dataset.cc scales."""
    return torch.from_numpy(pixels.astype(np.float32)[:, None] / 127.5 - 1.0)


def fashion_mnist(split, data_dir=DATA_DIR):
    """(images uint8 (N, 28, 28), labels uint8 (N,)) of 'train' or 't10k'."""
    def find(name):
        for candidate in (name, name + ".gz"):
            if os.path.exists(os.path.join(data_dir, candidate)):
                return os.path.join(data_dir, candidate)
        raise FileNotFoundError(f"{data_dir}/{name}[.gz] (Debian's dataset-fashion-mnist)")
    return (read_idx(find(f"{split}-images-idx3-ubyte")),
            read_idx(find(f"{split}-labels-idx1-ubyte")))


def checkpoint_samples(path, n, seed):
    """n uint8 samples of a checkpoint's generator (eval mode), rounded as the service rounds."""
    import load_checkpoint_in_torch as loader  # make_reference_data's layers and reader

    arrays, metadata = loader.ref.read_safetensors(path)
    if "spec" not in metadata:
        raise ValueError(f"{path}: no 'spec' metadata (not a checkpoint of this project?)")
    generator, _, noise = loader.networks_from_spec(json.loads(metadata["spec"]))
    state = {name[len("generator."):]: torch.from_numpy(a.copy()) for name, a in arrays.items()
             if name.startswith("generator.")}
    generator.load_state_dict(state, strict=True)
    generator.eval()
    torch.manual_seed(seed)
    out = []
    with torch.no_grad():
        for start in range(0, n, 500):
            out.append(generator(noise(min(500, n - start))))
    images = torch.cat(out)
    if tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"{path}: the generator makes images of shape {tuple(images.shape[1:])}")
    pixels = torch.round((images.clamp(-1, 1) + 1) * 127.5).to(torch.uint8)[:, 0].numpy()
    return pixels, metadata.get("step")


# ------------------------------------------------------------------------------------------------
# The classifier
# ------------------------------------------------------------------------------------------------

class Classifier(nn.Module):
    FEATURES = 128

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),    # 28 -> 14
            nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),   # 14 -> 7
            nn.Flatten(), nn.Linear(32 * 7 * 7, self.FEATURES), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.FEATURES, 10))

    def forward(self, x):
        return self.head(self.features(x))


def save_classifier(model, path, metadata):
    import make_reference_data as ref  # its safetensors writer

    ref.write_safetensors(path, {k: v.detach() for k, v in model.state_dict().items()}, metadata)


def load_classifier(path):
    import make_reference_data as ref

    if not os.path.exists(path):
        raise SystemExit(f"{path} does not exist: run `/usr/bin/python3 scripts/sample_quality.py "
                         f"train-classifier --out {path}` first")
    arrays, metadata = ref.read_safetensors(path)
    model = Classifier()
    model.load_state_dict({k: torch.from_numpy(a.copy()) for k, a in arrays.items()}, strict=True)
    model.eval()
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return model, metadata, digest


def run_batches(fn, images, batch=1000):
    with torch.no_grad():
        return torch.cat([fn(images[i:i + batch]) for i in range(0, len(images), batch)])


def train_classifier(args):
    torch.manual_seed(args.seed)
    train_x, train_y = fashion_mnist("train", args.data_dir)
    test_x, test_y = fashion_mnist("t10k", args.data_dir)
    x, y = to_model_range(train_x), torch.from_numpy(train_y.astype(np.int64))
    tx, ty = to_model_range(test_x), torch.from_numpy(test_y.astype(np.int64))
    model = Classifier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=order)
        total = 0.0
        for i in range(0, len(x), args.batch):
            idx = perm[i:i + args.batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        accuracy = (run_batches(model, tx).argmax(1) == ty).float().mean().item()
        print(f"epoch {epoch + 1}/{args.epochs}: training loss {total / len(x):.4f}, "
              f"test accuracy {accuracy:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    metadata = {
        "format": "gan-sample-quality-classifier-v1",
        "architecture": "conv16-5x5-same relu maxpool2, conv32-5x5-same relu maxpool2, "
                        "dense128 relu (features), dropout0.3, dense10",
        "input": "28x28x1, pixel / 127.5 - 1",
        "test_accuracy": f"{accuracy:.4f}",
        "seed": str(args.seed), "epochs": str(args.epochs), "batch": str(args.batch),
        "optimizer": "adam lr 1e-3", "threads": str(args.threads),
        "torch": torch.__version__,
    }
    save_classifier(model, args.out, metadata)
    print(f"test accuracy {accuracy:.4f}; wrote {args.out} "
          f"({os.path.getsize(args.out) / 1e6:.2f} MB)")
    return 0


# ------------------------------------------------------------------------------------------------
# The distance
# ------------------------------------------------------------------------------------------------

class Scorer:
    def __init__(self, classifier_path, n, data_dir):
        if not 2 <= n <= HALF:
            raise SystemExit(f"-n must be 2 to {HALF} (the test set's half), got {n}")
        self.model, self.metadata, self.digest = load_classifier(classifier_path)
        self.n = n
        test_x, _ = fashion_mnist("t10k", data_dir)
        perm = np.random.default_rng(0).permutation(len(test_x))
        self.half_a, self.half_b = test_x[perm[:HALF]], test_x[perm[HALF:]]
        self.data_dir = data_dir
        self.reference = self.features(to_model_range(self.half_a[:n]))

    def features(self, images):
        return run_batches(self.model.features, images).numpy().astype(np.float64)

    def distance(self, images):
        return frechet.frechet_distance_of_features(self.features(images), self.reference)

    def class_counts(self, images):
        predicted = run_batches(self.model, images).argmax(1).numpy()
        return np.bincount(predicted, minlength=10).tolist()

    def baseline(self):
        """The real-vs-real floor at this N: test half B against half A."""
        return self.distance(to_model_range(self.half_b[:self.n]))

    def header(self):
        return {"n": self.n, "classifier_sha256": self.digest,
                "classifier_test_accuracy": float(self.metadata.get("test_accuracy", "nan"))}


def fid(args):
    if args.checkpoint and args.samples:
        raise SystemExit("give sample files or --checkpoint, not both")
    if not args.checkpoint and not args.samples:
        raise SystemExit("give sample files (PNG, IDX, .npy) or --checkpoint FILE")
    if args.checkpoint:
        pixels, step = checkpoint_samples(args.checkpoint, args.n, args.seed)
        images, source = to_model_range(pixels), f"{args.checkpoint} (step {step}, seed {args.seed})"
    else:
        images, source = load_images(args.samples, args.count), " ".join(args.samples)
    n = min(args.n, len(images))
    scorer = Scorer(args.classifier, n, args.data_dir)
    images = images[:n]
    value, floor = scorer.distance(images), scorer.baseline()
    counts = scorer.class_counts(images)
    result = dict(scorer.header(), samples=source, fid=round(value, 4),
                  real_vs_real_fid=round(floor, 4), predicted_classes=counts)
    if args.json:
        print(json.dumps(result))
        return 0
    if n < args.n:
        print(f"note: only {n} images given, so N = {n} (compare only figures at the same N)")
    print(f"samples: {source}")
    print(f"N = {n}; classifier {os.path.basename(args.classifier)} (test accuracy "
          f"{result['classifier_test_accuracy']:.4f}, sha256 {scorer.digest[:12]})")
    print(f"FID {value:.3f}  (real test vs real test at N = {n}: {floor:.3f})")
    print("predicted classes: " + ", ".join(f"{c} {k}" for c, k in zip(CLASSES, counts)))
    return 0


def baselines(args):
    scorer = Scorer(args.classifier, args.n, args.data_dir)
    n = args.n
    train_x, _ = fashion_mnist("train", args.data_dir)
    train = train_x[np.random.default_rng(1).permutation(len(train_x))[:n]]
    noise = np.random.default_rng(2).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    rows = [
        ("real test half B vs half A", scorer.baseline()),
        ("real train vs test half A", scorer.distance(to_model_range(train))),
        ("uniform noise pixels vs test half A", scorer.distance(to_model_range(noise))),
        ("black images (all -1) vs test half A",
         scorer.distance(torch.full((n, 1, 28, 28), -1.0))),
    ]
    if args.json:
        print(json.dumps(dict(scorer.header(), **{name: round(v, 4) for name, v in rows})))
        return 0
    print(f"N = {n}; classifier {os.path.basename(args.classifier)} (test accuracy "
          f"{scorer.metadata.get('test_accuracy')}, sha256 {scorer.digest[:12]})")
    for name, value in rows:
        print(f"  {name:40s} {value:10.3f}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data_dir", default=DATA_DIR, help="Fashion-MNIST IDX files")
    common.add_argument("--threads", type=int, default=2, help="torch intra-op threads")

    t = sub.add_parser("train-classifier", parents=[common],
                       help="train the feature classifier and write its weights")
    t.add_argument("--out", default=DEFAULT_CLASSIFIER, help="weights file (safetensors)")
    t.add_argument("--epochs", type=int, default=4)
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--seed", type=int, default=1)

    scoring = argparse.ArgumentParser(add_help=False, parents=[common])
    scoring.add_argument("--classifier", default=DEFAULT_CLASSIFIER, help="weights file")
    scoring.add_argument("-n", type=int, default=2000,
                         help="images per side (generated and real), at most 5000")
    scoring.add_argument("--json", action="store_true", help="print one JSON line")

    f = sub.add_parser("fid", parents=[scoring], help="the distance of generated samples")
    f.add_argument("samples", nargs="*", help="PNG files or grids, PNG directories, IDX, .npy")
    f.add_argument("--count", type=int, help="images to take from the inputs (default: all, "
                                             "black tiles ending a PNG grid dropped)")
    f.add_argument("--checkpoint", help="draw -n samples from this checkpoint's generator")
    f.add_argument("--seed", type=int, default=1, help="torch seed of --checkpoint's noise")

    sub.add_parser("baselines", parents=[scoring],
                   help="real vs real and noise distances: the scale of the numbers")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.command == "train-classifier":
        return train_classifier(args)
    if args.command == "fid":
        return fid(args)
    return baselines(args)


if __name__ == "__main__":
    sys.exit(main())
