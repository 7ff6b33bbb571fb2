"""Quality benchmark: train under fixed time budgets on the UCI digits, score in a digit classifier's feature space.

    python bench/quality.py                                  # every config in CONFIGS at 2 and 5 minutes
    python bench/quality.py --budgets 2m,5m --configs kit-dcgan,baseline,kit-cgan
    python bench/quality.py --budgets 90s --configs "" --custom "w32=--g-width 32 --d-width 32"   # any kit flags
    python bench/quality.py --table                          # rewrite table and plot from past runs

The 1,797 scikit-learn digits (8x8 scans) are upscaled to 64x64 RGB and written twice: as a Stanford-Dogs-shaped
archive (10 "breeds", one box per image) that `kit prepare` reads, and as an image folder for the baseline, a
pytorch/examples DCGAN written in the usual notebook style. A small CNN classifier, trained once on a split of the
digits and cached, is the feature network: digit-FID is the Frechet distance in its penultimate features (computed by
kit.metrics with the classifier passed in as the extractor), class bits the entropy of its predicted classes, d the
MiFID memorisation distance in the same features, and CGAN accuracy the share of samples read as the asked digit.
`kit train` runs as a subprocess whose budget includes its start and tail (--n-images is kept small for that);
the baseline's budget counts its training loop only.
"""
import argparse
import copy
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from kit.config import parse_duration  # noqa: E402
from kit.device import resolve_device  # noqa: E402
from kit.files import atomic_path  # noqa: E402

OUT = ROOT / "bench" / "out" / "quality"
RESULTS = ROOT / "bench" / "results"
SIZE = 64
N_HELD_OUT = 597          # digits kept out of the classifier's training (1,200 train it)
KIT_TRAIN = [sys.executable, "-m", "kit", "train"]
KIT_TAIL_IMAGES = 64      # --n-images of the benchmarked `kit train` runs: keeps the zip tail inside the budget small

# name -> extra `kit train` flags ("baseline" is the notebook loop below); each variant changes one default
CONFIGS = {
    "kit-dcgan": ["--model", "dcgan"],
    "baseline": None,
    "kit-cgan": ["--model", "cgan"],
    **{f"dcgan-loss-{loss}": ["--model", "dcgan", "--loss", loss]
       for loss in ("hinge", "bce", "lsgan", "ralsgan", "wgan-gp")},
    "dcgan-ema-0": ["--model", "dcgan", "--ema", "0"],
    "dcgan-ema-0.999": ["--model", "dcgan", "--ema", "0.999"],
    **{f"dcgan-aug-{name}": ["--model", "dcgan", "--augment", policy] for name, policy in
       (("none", "none"), ("flip", "flip"), ("tc", "translation,color"), ("diffaug", "flip,translation,color"))},
}


# ---------------------------------------------------------------- the digits as data sets

def digits(size=SIZE):
    """The 1,797 UCI digits as uint8 N×3×size×size (white ink on black, bilinear upscale) and their labels."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.from_numpy(d.images / 16.0).float()[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1).numpy()
    return u8, d.target.astype(np.int64)


def jpeg_bytes(image_u8):
    """One 3×H×W uint8 image as JPEG bytes (quality 95, no chroma subsampling)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image_u8.transpose(1, 2, 0))).save(buf, "JPEG", quality=95, subsampling=0)
    return buf.getvalue()


def decode(blobs):
    """JPEG bytes -> uint8 N×3×H×W: the pixels every trainer and the reference statistics see."""
    from PIL import Image
    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")).transpose(2, 0, 1) for b in blobs])


def write_digit_sets(root):
    """Write root/archive/{all-dogs,Annotation}.zip and root/folder/<breed>/*.jpg; return the decoded real set."""
    from kit.data.synthetic import voc_xml
    root = Path(root)
    images, labels = digits()
    blobs = [jpeg_bytes(im) for im in images]
    breeds = [f"n{9000000 + k:08d}-digit_{k}" for k in range(10)]   # sorted by wnid = sorted by digit
    names = [f"{breeds[k].split('-')[0]}_{i}" for i, k in enumerate(labels)]
    if not (root / "archive" / "Annotation.zip").exists():
        (root / "archive").mkdir(parents=True, exist_ok=True)
        for breed in breeds:
            (root / "folder" / breed).mkdir(parents=True, exist_ok=True)
        for name, k, blob in zip(names, labels, blobs):
            (root / "folder" / breeds[k] / f"{name}.jpg").write_bytes(blob)
        with zipfile.ZipFile(root / "archive" / "all-dogs.zip", "w") as z:
            for name, blob in zip(names, blobs):
                z.writestr(f"all-dogs/{name}.jpg", blob)
        with atomic_path(root / "archive" / "Annotation.zip") as tmp, zipfile.ZipFile(tmp, "w") as z:
            for name, k in zip(names, labels):
                z.writestr(f"Annotation/{breeds[k]}/{name}", voc_xml(breeds[k], name, SIZE, SIZE, [(0, 0, SIZE, SIZE, k)]))
    return decode(blobs), labels


def split(n, n_held_out=N_HELD_OUT, seed=0):
    """Fixed train / held-out index split of the digits."""
    order = np.random.default_rng(seed).permutation(n)
    return order[n_held_out:], order[:n_held_out]


# ---------------------------------------------------------------- the digit classifier and its features

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


# ---------------------------------------------------------------- scores

def class_bits(predicted, n_classes=10):
    """Entropy in bits of the histogram of predicted classes (log2 10 = 3.32 is an even spread)."""
    p = np.bincount(predicted, minlength=n_classes) / len(predicted)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()) + 0.0   # + 0.0: one class gives 0.0, not -0.0


def evaluate(images, real, extractor, asked=None):
    """digit-FID, d, class bits (and CGAN accuracy when `asked` labels are given) of uint8 images against real."""
    from kit.metrics.score import score_images
    report = score_images(images, as_dataset(real), extractor=extractor, device="cpu")
    predicted = extractor.classify(images)
    result = {"fid": float(report["fid"]), "d": float(report["distance"]), "bits": class_bits(predicted)}
    if asked is not None:
        result["cgan_acc"] = float((predicted == np.asarray(asked)).mean())
    return result


# ---------------------------------------------------------------- the baseline: pytorch/examples DCGAN, notebook style

def baseline_models(nz=100, width=64):
    """The pytorch/examples DCGAN generator and discriminator at 64×64 with the N(0, 0.02) init."""
    G = nn.Sequential(
        nn.ConvTranspose2d(nz, width * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(width * 8), nn.ReLU(True),
        nn.ConvTranspose2d(width * 8, width * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 4), nn.ReLU(True),
        nn.ConvTranspose2d(width * 4, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.ReLU(True),
        nn.ConvTranspose2d(width * 2, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
        nn.ConvTranspose2d(width, 3, 4, 2, 1, bias=False), nn.Tanh())
    D = nn.Sequential(
        nn.Conv2d(3, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
        nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2, True),
        nn.Conv2d(width * 2, width * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 4), nn.LeakyReLU(0.2, True),
        nn.Conv2d(width * 4, width * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 8), nn.LeakyReLU(0.2, True),
        nn.Conv2d(width * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())
    for m in list(G.modules()) + list(D.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return G, D


def train_baseline(folder, seconds, device, snapshot_times, seed=0, nz=100):
    """Train the notebook DCGAN for `seconds` of loop time; return steps and G snapshots [(seconds, step, state)]."""
    import torchvision.datasets as dset
    import torchvision.transforms as T
    torch.manual_seed(seed)
    data = dset.ImageFolder(str(folder), transform=T.Compose([
        T.Resize(SIZE), T.CenterCrop(SIZE), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)]))
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True, num_workers=2)
    G, D = baseline_models(nz)
    G, D = G.to(device), D.to(device)
    criterion = nn.BCELoss()
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    snapshots, pending, step, images_seen = [], sorted(snapshot_times), 0, 0
    start = time.perf_counter()
    while True:
        for real, _ in loader:
            real = real.to(device)
            b = real.size(0)
            D.zero_grad()
            loss_real = criterion(D(real).view(-1), torch.ones(b, device=device))
            loss_real.backward()
            fake = G(torch.randn(b, nz, 1, 1, device=device))
            loss_fake = criterion(D(fake.detach()).view(-1), torch.zeros(b, device=device))
            loss_fake.backward()
            opt_d.step()
            G.zero_grad()
            loss_g = criterion(D(fake).view(-1), torch.ones(b, device=device))
            loss_g.backward()
            opt_g.step()
            step, images_seen = step + 1, images_seen + b
            elapsed = time.perf_counter() - start
            while pending and elapsed >= pending[0]:
                snapshots.append((elapsed, step, copy.deepcopy(G.state_dict())))
                pending.pop(0)
            if elapsed >= seconds:
                snapshots.append((elapsed, step, copy.deepcopy(G.state_dict())))
                return {"steps": step, "images_seen": images_seen, "seconds": elapsed}, snapshots


@torch.no_grad()
def baseline_samples(state, n, device, seed=0, nz=100):
    """n uint8 images from a baseline G state, sampled as the example does (train-mode BatchNorm, batches of 64)."""
    G, _ = baseline_models(nz)
    G.load_state_dict(state)
    G.to(device).train()
    g = torch.Generator().manual_seed(seed)
    out = [G(torch.randn(64, nz, 1, 1, generator=g).to(device)).cpu() for _ in range((n + 63) // 64)]
    return ((torch.cat(out)[:n] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


# ---------------------------------------------------------------- one benchmark run per (config, budget)

def run_kit(name, flags, cache, seconds, device, out, points):
    """`python -m kit train` under the budget; each checkpoint it writes is kept (G weights only) as a snapshot."""
    run_dir = out / "runs" / f"{name}-{seconds:g}s"
    command = [*KIT_TRAIN, "--data", str(cache), "--out", str(run_dir), "--force",
               "--budget", f"{seconds:g}s", "--device", device, "--n-images", str(KIT_TAIL_IMAGES),
               "--checkpoint-every", f"{seconds / points:g}s", *flags]
    print(" ".join(command[1:]), flush=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "last.pt").unlink(missing_ok=True)
    snapshots, seen, start = [], None, time.perf_counter()
    with open(run_dir / "train.log", "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        while True:
            done = process.poll() is not None
            seen = keep_snapshot(run_dir / "last.pt", seen, time.perf_counter() - start, snapshots)
            if done:
                break
            time.sleep(0.5)
    wall = time.perf_counter() - start
    if process.returncode:
        raise SystemExit(f"kit train failed for {name}: see {run_dir / 'train.log'}")
    final = snapshots[-1][1]
    c = final["config"]
    info = {"steps": final["step"], "images_seen": final["step"] * c["batch_size"], "seconds": wall,
            "settings": f"width {c['g_width']}/{c['d_width']}, lr {c['lr_g']:g}/{c['lr_d']:g}, {c['loss']}, "
                        f"batch {c['batch_size']}, EMA {c['ema']:g}, augment {c['augment']}, threads {c['threads']}"}
    snapshots = [(t, state["step"], state) for t, state in snapshots]
    return info, snapshots


def keep_snapshot(path, seen, elapsed, snapshots):
    """Append (elapsed, slim checkpoint) to snapshots when `path` changed since `seen` (its mtime); returns the mtime."""
    try:
        mtime = path.stat().st_mtime_ns
        if mtime != seen:
            state = torch.load(path, map_location="cpu", weights_only=False)
            keep = ("config", "G", "G_ema", "step", "classes", "label_counts", "image_shape")
            snapshots.append((elapsed, {k: state.get(k) for k in keep}))
        return mtime
    except FileNotFoundError:   # not written yet, or replaced while we looked: the next poll sees it
        return seen


def kit_samples(state, n):
    """n uint8 images from a kit checkpoint (EMA weights when present) and the digits asked for (CGAN: i mod 10)."""
    from kit.sample import generate
    asked = np.arange(n) % 10 if state["config"]["model"] == "cgan" else None
    images, _ = generate(state, n, seed=0, device="cpu", labels=asked)
    return images, asked


def bench_one(name, flags, seconds, args, real, extractor, cache, folder):
    """Train one config for one budget, score its snapshots; returns the result record (final = last snapshot)."""
    device = str(resolve_device(args.device))
    load_before = os.getloadavg()[0]
    if flags is None:
        times = [seconds * k / args.points for k in range(1, args.points)]
        info, snapshots = train_baseline(folder, seconds, device, times)
        info["settings"] = BASELINE_SETTINGS
        samplers = [(t, step, lambda s=state: (baseline_samples(s, args.n_eval, device), None))
                    for t, step, state in snapshots]
        flags = [BASELINE]
    else:
        info, snapshots = run_kit(name, flags, cache, seconds, args.device, args.out, args.points)
        samplers = [(t, step, lambda s=state: kit_samples(s, args.n_eval)) for t, step, state in snapshots]
    load_after = os.getloadavg()[0]
    curve = []
    for t, step, sampler in samplers:
        images, asked = sampler()
        final = evaluate(images, real, extractor, asked)
        curve.append((round(t, 1), step, round(final["fid"], 3)))
    from kit.plot import save_grid
    save_grid(images[:100], args.results / f"quality_samples_{name}_{seconds:g}s.png", nrow=10)
    record = {"config": name, "flags": " ".join(flags), "budget_s": seconds, **info, **final, "curve": curve,
              "load": [round(load_before, 2), round(load_after, 2)], "device": device, "n_eval": args.n_eval}
    print(json.dumps({k: v for k, v in record.items() if k != "curve"}), flush=True)
    return record


BASELINE = "pytorch/examples dcgan in notebook style: ImageFolder, DataLoader with 2 workers, fp32"
BASELINE_SETTINGS = "width 64/64, lr 0.0002/0.0002, bce, batch 64, EMA 0, augment none, threads 0"


def as_dataset(images):
    """uint8 images wrapped as a kit Dataset (what kit.metrics.score_images takes as `real`)."""
    from kit.data.cache import Dataset
    return Dataset(images=images, labels=np.zeros(len(images), np.int64), classes=["digit"], sources=[""] * len(images))


def references(real, extractor):
    """Reference rows: held-out real digits against the rest, copies of the real digits, uniform noise."""
    train, held = split(len(real))
    noise = np.random.default_rng(0).integers(0, 256, real.shape, dtype=np.uint8)
    return {"ref: held-out real vs the rest": evaluate(real[held], real[np.sort(train)], extractor),
            "ref: copies of the real digits": evaluate(real, real, extractor),
            "ref: uniform noise": evaluate(noise, real, extractor)}


# ---------------------------------------------------------------- table and plot

def write_table(records, path):
    """Markdown: one section per session (newest first), rows sorted by budget then config, reference rows last."""
    lines = ["# Quality benchmark: UCI digits, scored in a digit classifier's features", "",
             "Written by `python bench/quality.py` from its measurements. Budgets are wall-clock. A `kit train` row's",
             f"budget includes the command's start-up and its tail (final zip of `--n-images {KIT_TAIL_IMAGES}`, kept small",
             "for the bench); the baseline's budget counts its training loop only. s: seconds the run took.",
             "digit-FID: n_eval generated images against all 1,797 real digits, in the classifier's 64-d features.",
             "class bits: entropy of the classifier's predicted digits (an even spread is log2 10 = 3.32).",
             "d: MiFID memorisation distance in the same features (copies of the data: 0).",
             "CGAN acc: share of samples, asked for digit k = i mod 10, that the classifier reads as k.",
             "settings: what the run used, read back from its checkpoint (threads 0: torch's default).", ""]
    for sid in sorted({r["session"]["id"] for r in records}, reverse=True):
        rows = [r for r in records if r["session"]["id"] == sid]
        s = rows[0]["session"]
        loads = [x for r in rows for x in r["load"]]
        lines += [f"## Session {sid}", "",
                  f"{s['machine']}; commit {s['commit']}; classifier held-out accuracy {s['accuracy']:.1%}; "
                  f"n_eval {rows[0]['n_eval']}; 1-minute load average {min(loads):.1f} to {max(loads):.1f} "
                  "at the starts and ends of the runs.", "",
                  "| config | budget | steps | images seen | s | digit-FID | class bits | d | CGAN acc | flags | settings |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(rows, key=lambda r: (r["budget_s"], r["config"])):
            acc = f"{r['cgan_acc']:.1%}" if "cgan_acc" in r else ""
            lines.append(f"| {r['config']} | {duration(r['budget_s'])} | {r['steps']} | {r['images_seen']} | "
                         f"{r['seconds']:.0f} | {r['fid']:.1f} | {r['bits']:.2f} | {r['d']:.4f} | {acc} | {r['flags']} | "
                         f"{r.get('settings', '')} |")
        for name, ref in s["references"].items():
            lines.append(f"| {name} | | | | | {ref['fid']:.1f} | {ref['bits']:.2f} | {ref['d']:.4f} | | | |")
        lines.append("")
        fid = {(r["config"], r["budget_s"]): r["fid"] for r in rows}
        for budget in sorted({b for c, b in fid if c == "baseline" and ("kit-dcgan", b) in fid}):
            lines.append(f"At {duration(budget)}: kit DCGAN digit-FID / baseline digit-FID = "
                         f"{fid['kit-dcgan', budget] / fid['baseline', budget]:.3f}.  ")
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def write_plot(records, path):
    """log10 digit-FID against seconds, one line per (config, budget) of the newest session."""
    from kit.plot import save_line_chart
    newest = max(r["session"]["id"] for r in records)
    series = {f"{r['config']} {duration(r['budget_s'])}": ([t for t, _, _ in r["curve"]], [np.log10(max(f, 1e-3)) for _, _, f in r["curve"]])
              for r in records if r["session"]["id"] == newest}
    save_line_chart(series, path, xlabel="seconds", ylabel="log10 digit-FID",
                    title=f"digit-FID (log10) against seconds of training, {newest}")


def duration(seconds):
    """120 -> '2 min', 90 -> '90 s'."""
    return f"{seconds / 60:g} min" if seconds % 60 == 0 else f"{seconds:g} s"


def read_records(path):
    """All records of results.jsonl ([] when missing)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def machine():
    """This machine in one line."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), platform.processor())
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{os.cpu_count()}-core CPU ({cpu}){gpu}, torch {torch.__version__}, torch threads {torch.get_num_threads()}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="2m,5m", help="comma list of durations, e.g. 2m,5m,30m")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma list of {', '.join(CONFIGS)}")
    parser.add_argument("--custom", action="append", default=[], metavar="LABEL=FLAGS",
                        help="an extra config: a label and `kit train` flags, e.g. 'wide=--model dcgan --g-width 128'")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--n-eval", type=int, default=1000, help="generated images scored per snapshot")
    parser.add_argument("--points", type=int, default=5, help="snapshots per run for the digit-FID curve")
    parser.add_argument("--out", type=Path, default=OUT, help="scratch folder (data, classifier, runs, results.jsonl)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the table, plot and sample grids go")
    parser.add_argument("--table", action="store_true", help="only rewrite the table and plot from past runs")
    args = parser.parse_args(argv)
    os.environ.setdefault("DOGKIT_CACHE", str(args.out / "cache"))   # kit.metrics' real-statistics cache
    configs = {name: CONFIGS.get(name, "?") for name in args.configs.split(",") if name}
    configs.update({label: flags.split() for label, _, flags in (c.partition("=") for c in args.custom)})
    unknown = [name for name, flags in configs.items() if flags == "?"]
    if unknown:
        raise SystemExit(f"error: config {unknown[0]} is not known: use one of {', '.join(CONFIGS)}, or --custom")
    results_file = args.out / "results.jsonl"
    if not args.table:
        real, labels = write_digit_sets(args.out / "digits")
        extractor, accuracy = load_classifier(real, labels, args.out / "digit_classifier.pt")
        from kit.data.cache import prepare
        cache = args.out / "digits.npz"
        prepare(args.out / "digits" / "archive", out=cache, crop="square", size=SIZE, progress=False)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        session = {"id": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
                   "commit": commit.stdout.strip(), "accuracy": accuracy, "references": references(real, extractor)}
        for seconds in (parse_duration(b) for b in args.budgets.split(",")):
            for name, flags in configs.items():
                record = bench_one(name, flags, seconds, args, real, extractor, cache, args.out / "digits" / "folder")
                with open(results_file, "a") as f:
                    f.write(json.dumps({"session": session, **record}) + "\n")
    records = read_records(results_file)
    if records:
        write_table(records, args.results / "quality.md")
        write_plot(records, args.results / "quality_fid_vs_time.png")
        print(f"wrote {args.results / 'quality.md'} and {args.results / 'quality_fid_vs_time.png'}")


if __name__ == "__main__":
    main()
