"""The set's classifier, its features as a kit.metrics extractor, and the scores measured in them."""
import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import SIZE, as_dataset, split


class ClassifierNet(nn.Module):
    """Small CNN on 64×64 RGB: four stride-2 convolutions, a `dim`-wide ReLU feature layer, an n_classes-way head."""

    def __init__(self, n_classes=10, dim=64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 4, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Conv2d(64, 64, 4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 4 * 4, dim), nn.ReLU())
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x):
        return self.head(self.body(x))


def train_classifier(images, labels, n_classes=10, epochs=20, seed=0):
    """Fit a ClassifierNet on uint8 images with ±4 px random shifts; returns the net in eval mode."""
    torch.manual_seed(seed)
    net = ClassifierNet(n_classes)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    x, y = to_float(torch.from_numpy(images)), torch.from_numpy(labels)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(64):
            dx, dy = torch.randint(-4, 5, (2,), generator=g).tolist()
            loss = F.cross_entropy(net(torch.roll(x[idx], (dy, dx), (2, 3))), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def to_float(images):
    """uint8 N×C×H×W (np or torch, 1 or 3 channels, any size) -> float N×3×64×64 in [-1, 1]."""
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images).float() / 127.5 - 1
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if x.shape[-2:] != (SIZE, SIZE):
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
    return x


class ClassifierFeatures:
    """Feature extractor for kit.metrics: uint8 N×C×H×W -> float32 N×dim penultimate features of a ClassifierNet."""

    def __init__(self, net, name="digits-cnn"):
        self.net = net.eval()
        self.name = name
        self.dim = net.head.in_features
        self.n_classes = net.head.out_features
        digest = hashlib.sha256()
        for k, v in net.state_dict().items():
            digest.update(k.encode() + v.numpy().tobytes())
        self.fingerprint = digest.hexdigest()[:16]

    @torch.no_grad()
    def __call__(self, images):
        return torch.cat([self.net.body(to_float(b)) for b in torch.as_tensor(np.asarray(images)).split(500)]).numpy()

    @torch.no_grad()
    def classify(self, images):
        """Predicted class of each image (int64 N)."""
        return self.net.head(torch.from_numpy(self(images))).argmax(1).numpy()


def load_classifier(qset, real, labels, path):
    """The set's cached classifier at `path`, trained first (and held-out accuracy printed) when missing."""
    path = Path(path)
    train_idx, held_idx = split(len(real), qset.n_held_out)
    if path.exists():
        net = ClassifierNet(len(qset.breeds))
        net.load_state_dict(torch.load(path, map_location="cpu"))
    else:
        net = train_classifier(real[train_idx], labels[train_idx], len(qset.breeds))
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path)
    extractor = ClassifierFeatures(net, f"{qset.name}-cnn")
    accuracy = float((extractor.classify(real[held_idx]) == labels[held_idx]).mean())
    print(f"{qset.noun} classifier {path}: held-out accuracy {accuracy:.1%} on {len(held_idx)} images")
    return extractor, accuracy


def class_bits(predicted, n_classes):
    """Entropy in bits of the histogram of predicted classes (log2 n_classes is an even spread)."""
    p = np.bincount(predicted, minlength=n_classes) / len(predicted)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()) + 0.0   # + 0.0: one class gives 0.0, not -0.0


def evaluate(images, real, extractor, asked=None):
    """FID, d, class bits, the rarest class's share (and the asked-for class rate given `asked`) of images."""
    from kit.metrics.score import score_images
    report = score_images(images, as_dataset(real), extractor=extractor, device="cpu")
    predicted = extractor.classify(images)
    result = {"fid": float(report["fid"]), "d": float(report["distance"]),
              "bits": class_bits(predicted, extractor.n_classes),
              "rarest": float(np.bincount(predicted, minlength=extractor.n_classes).min() / len(predicted))}
    if asked is not None:
        result["cgan_acc"] = float((predicted == np.asarray(asked)).mean())
    return result


def distortions(images, seed=0):
    """{label: uint8 images}: copies of the images blurred, coarsened, noised and colour-cast."""
    import torchvision.transforms.functional as TF
    x = torch.from_numpy(images).float()
    noise = torch.from_numpy(np.random.default_rng(seed).normal(0, 30, images.shape)).float()

    def as_u8(t):
        return t.round().clamp(0, 255).to(torch.uint8).numpy()
    return {"blurred (Gaussian, sigma 2)": as_u8(TF.gaussian_blur(x, [7, 7], [2.0, 2.0])),
            "4x coarser (area down, nearest up)": as_u8(F.interpolate(F.avg_pool2d(x, 4), scale_factor=4)),
            "with Gaussian noise (sigma 30)": as_u8(x + noise),
            "colour cast (red +40, blue -40)": as_u8(x + torch.tensor([40.0, 0, -40]).view(1, 3, 1, 1))}


def references(real, extractor, qset):
    """Reference rows: held-out real images against the rest (plain and distorted), copies of the real set, noise."""
    train, held = split(len(real), qset.n_held_out)
    rest = real[np.sort(train)]
    noise = np.random.default_rng(0).integers(0, 256, real.shape, dtype=np.uint8)
    rows = {"ref: held-out real vs the rest": evaluate(real[held], rest, extractor)}
    rows.update({f"ref: held-out, {label}": evaluate(images, rest, extractor)
                 for label, images in distortions(real[held]).items()})
    rows.update({f"ref: copies of the real {qset.noun}s": evaluate(real, real, extractor),
                 "ref: uniform noise": evaluate(noise, real, extractor)})
    return rows
