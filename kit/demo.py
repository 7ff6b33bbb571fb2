"""Run the whole job on built-in demo data: archives, prepare, a short training, images.zip, check, score."""
import time
from pathlib import Path

from kit.errors import UserError
from kit.files import refuse_overwrite


def add_arguments(parser):
    """Flags of `python -m kit demo`."""
    parser.add_argument("--out", default="demo", help="folder for everything the demo writes (default demo/)")
    parser.add_argument("--budget", default="+40s",
                        help="training budget; +DURATION (the default, +40s) trains that long and adds what the tail "
                             "(10k images + zip) is measured to need, so a slow or busy machine never refuses; a "
                             "plain DURATION is a hard limit, tail included")
    parser.add_argument("--model", default="dcgan", help="dcgan | cgan | mlp")
    parser.add_argument("--width", type=int, default=0,
                        help="G and D width (0: by device, as kit train chooses)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default; 1 on a busy CPU)")
    parser.add_argument("--score-n", type=int, default=100,
                        help="generated and real images scored (CPU Inception runs a few images/s)")
    parser.add_argument("--inception-weights", help="FID Inception weights file (default: the torch hub cache)")
    parser.add_argument("--force", action="store_true", help="replace an earlier demo in --out")


def score(zip_path, data, n, weights, device):
    """FID/d/MiFID of n images of the zip against n real demo images, or why scoring was skipped."""
    try:
        from kit.metrics.features import InceptionFeatures
        extractor = InceptionFeatures(weights=weights, device=device)
    except (UserError, ImportError) as e:
        return f"score skipped: {e}"
    import numpy as np
    from kit.data.cache import Dataset, load_or_prepare
    from kit.metrics.score import score_images
    from kit.images import read_images
    real = load_or_prepare(data, crop="whole")
    keep = np.linspace(0, len(real) - 1, min(n, len(real))).round().astype(int)
    real = Dataset(real.images[keep], real.labels[keep], real.classes, [real.sources[i] for i in keep])
    images, _ = read_images(zip_path)
    r = score_images(images[:n], real, extractor=extractor, device=device)
    return (f"score on {r['n_generated']} generated vs {r['n_real']} real images (indicative only at this size): "
            f"FID {r['fid']:.1f}, d {r['distance']:.3f}, MiFID {r['mifid']:.1f}")


def main(args) -> int:
    """Run every step in order and print one summary at the end."""
    from kit.config import TrainConfig
    from kit.data.cache import prepare
    from kit.data.synthetic import write_demo
    from kit.package import check_zip
    from kit.train import train
    start = time.time()
    out = Path(args.out)
    zip_path = out / "images.zip"
    for path in (out / "data" / "all-dogs.zip", out / "data" / "Annotation.zip", out / "cache.npz",
                 out / "run" / "last.pt", zip_path):
        refuse_overwrite(path, args.force)
    steps, clock = [], [time.time()]

    def done(line):
        steps.append(f"{line} ({time.time() - clock[0]:.0f} s)")
        clock[0] = time.time()

    write_demo(out / "data")
    done(f"demo archives: {out / 'data'} (all-dogs.zip, Annotation.zip)")
    dataset = prepare(out / "data", out=out / "cache.npz", force=args.force, progress=False)
    done(f"prepared: {len(dataset)} crops of {len(dataset.classes)} breeds -> {out / 'cache.npz'}")
    cfg = TrainConfig(data=str(out / "cache.npz"), out=str(out / "run"), model=args.model, budget=args.budget,
                      g_width=args.width, d_width=args.width, threads=args.threads,
                      zip=str(zip_path), device=args.device, force=args.force, sample_every="15s")
    train(cfg)
    done(f"trained {args.model} for {args.budget.lstrip('+')}: {out / 'run'} (last.pt, samples/, losses.png) and "
         f"{zip_path}")
    problems = check_zip(zip_path)
    done(f"{zip_path}: " + ("passes the competition's check" if not problems else "; ".join(problems)))
    done(score(zip_path, out / "data", args.score_n, args.inception_weights, args.device))
    print(f"\ndemo finished in {time.time() - start:.0f} s")
    for i, line in enumerate(steps, 1):
        print(f"  {i}. {line}")
    print("next: `python -m kit kernel build dcgan --user YOU` and `python -m kit kernel push dcgan` train on Kaggle's "
          "GPU; `python submit/make_zip.py --check images.zip` checks any zip")
    return 1 if problems else 0
