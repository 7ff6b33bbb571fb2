"""The digit classifier, its features as a kit.metrics extractor, and the scores measured in them."""
import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import SIZE, as_dataset, split


class DigitNet(nn.Module):
    """Small CNN on 64×64 RGB: four stride-2 convolutions, a `dim`-wide ReLU feature layer, a 10-way head."""

    def __init__(self, dim=64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 4, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Conv2d(64, 64, 4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 4 * 4, dim), nn.ReLU())
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        return self.head(self.body(x))


def train_classifier(images, labels, epochs=20, seed=0):
    """Fit DigitNet on uint8 images with ±4 px random shifts; returns the net in eval mode."""
    torch.manual_seed(seed)
    net = DigitNet()
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


class DigitFeatures:
    """Feature extractor for kit.metrics: uint8 N×C×H×W -> float32 N×dim penultimate features of a DigitNet."""

    def __init__(self, net):
        self.net = net.eval()
        self.name = "digits-cnn"
        self.dim = net.head.in_features
        digest = hashlib.sha256()
        for k, v in net.state_dict().items():
            digest.update(k.encode() + v.numpy().tobytes())
        self.fingerprint = digest.hexdigest()[:16]

    @torch.no_grad()
    def __call__(self, images):
        return torch.cat([self.net.body(to_float(b)) for b in torch.as_tensor(np.asarray(images)).split(500)]).numpy()

    @torch.no_grad()
    def classify(self, images):
        """Predicted digit of each image (int64 N)."""
        return self.net.head(torch.from_numpy(self(images))).argmax(1).numpy()


def load_classifier(real, labels, path):
    """The cached classifier at `path`, trained first (and held-out accuracy printed) when missing."""
    path = Path(path)
    train_idx, held_idx = split(len(real))
    if path.exists():
        net = DigitNet()
        net.load_state_dict(torch.load(path, map_location="cpu"))
    else:
        net = train_classifier(real[train_idx], labels[train_idx])
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path)
    extractor = DigitFeatures(net)
    accuracy = float((extractor.classify(real[held_idx]) == labels[held_idx]).mean())
    print(f"digit classifier {path}: held-out accuracy {accuracy:.1%} on {len(held_idx)} digits")
    return extractor, accuracy


def class_bits(predicted, n_classes=10):
    """Entropy in bits of the histogram of predicted classes (log2 10 = 3.32 is an even spread)."""
    p = np.bincount(predicted, minlength=n_classes) / len(predicted)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()) + 0.0   # + 0.0: one class gives 0.0, not -0.0


def evaluate(images, real, extractor, asked=None):
    """digit-FID, d, class bits, the rarest digit's share (and the asked-for digit rate given `asked`) of images."""
    from kit.metrics.score import score_images
    report = score_images(images, as_dataset(real), extractor=extractor, device="cpu")
    predicted = extractor.classify(images)
    result = {"fid": float(report["fid"]), "d": float(report["distance"]), "bits": class_bits(predicted),
              "rarest": float(np.bincount(predicted, minlength=10).min() / len(predicted))}
    if asked is not None:
        result["cgan_acc"] = float((predicted == np.asarray(asked)).mean())
    return result


def references(real, extractor):
    """Reference rows: held-out real digits against the rest, copies of the real digits, uniform noise."""
    train, held = split(len(real))
    noise = np.random.default_rng(0).integers(0, 256, real.shape, dtype=np.uint8)
    return {"ref: held-out real vs the rest": evaluate(real[held], real[np.sort(train)], extractor),
            "ref: copies of the real digits": evaluate(real, real, extractor),
            "ref: uniform noise": evaluate(noise, real, extractor)}
