"""Prepare training crops once into a cache file (uint8 N×C×H×W + labels) and load it fast."""
import functools
import hashlib
import json
import multiprocessing
import os
import sys
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kit.data import crops, readers
from kit.errors import UserError
from kit.files import atomic_path, refuse_overwrite

CACHE_VERSION = 1


@dataclass
class Dataset:
    """The prepared cache: what training, scoring and the benchmarks read."""
    images: np.ndarray                 # uint8 N×C×H×W
    labels: np.ndarray                 # int64 N, index into classes
    classes: list                      # class (breed) names, index = label
    sources: list                      # source file of each sample
    fingerprint: str = ""              # hash of the source files and the prepare options
    report: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.images)


def save(dataset: Dataset, path) -> None:
    """Write the cache atomically as an uncompressed .npz (loads in a fraction of a second); the same samples and
    report give the same bytes (fixed entry times)."""
    arrays = {"version": np.int64(CACHE_VERSION), "images": dataset.images, "labels": dataset.labels.astype(np.int64),
              "classes": np.array(dataset.classes, dtype=str), "sources": np.array(dataset.sources, dtype=str),
              "fingerprint": np.array(dataset.fingerprint), "report": np.array(json.dumps(dataset.report))}
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for name, array in arrays.items():
                with z.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w",
                            force_zip64=True) as entry:
                    np.lib.format.write_array(entry, np.asanyarray(array), allow_pickle=False)


def is_cache(path) -> bool:
    """True when `path` is a file written by `save`."""
    path = Path(path)
    if not path.is_file() or path.suffix != ".npz":
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            return "version" in z.files and "images" in z.files
    except Exception:
        return False


def load(path) -> Dataset:
    """Read a cache written by `save`; a bad file gives a one-line UserError."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION:
                raise UserError(f"{path} is a cache of another kit version: run `python -m kit prepare` again")
            return Dataset(images=z["images"], labels=z["labels"], classes=z["classes"].tolist(),
                           sources=z["sources"].tolist(), fingerprint=str(z["fingerprint"]),
                           report=json.loads(str(z["report"])))
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: run `python -m kit prepare --data ... --out {path}` first")
    except Exception as e:
        raise UserError(f"{path} is not a prepared cache ({type(e).__name__}): "
                        "run `python -m kit prepare` to make one") from None


def default_dir() -> Path:
    """Where caches go when --out is not given: $DOGKIT_CACHE, or ~/.cache/dogkit."""
    return Path(os.environ.get("DOGKIT_CACHE") or Path.home() / ".cache" / "dogkit")


def fingerprint(layout, crop: str, size: int, options: crops.Options = crops.Options()) -> str:
    """Hash of the source files' names, sizes and mtimes plus the options (no file is read)."""
    payload = {"files": readers.source_files(layout), "layout": layout.kind, "crop": crop, "size": size,
               "cache": CACHE_VERSION, "crops": crops.VERSION, **options.changes()}
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


def stored(path) -> tuple:
    """(fingerprint, report) inside a cache file, or ("", {}) when `path` is not one (only those entries are read)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return str(z["fingerprint"]), json.loads(str(z["report"]))
    except Exception:
        return "", {}


def check_options(variants, min_box, max_aspect) -> None:
    """One line for a variant count, box size or aspect limit out of range."""
    if variants < 1:
        raise UserError(f"--variants {variants} must be at least 1 (1: one crop per dog box, as before)")
    if min_box < 0:
        raise UserError(f"--min-box {min_box} must be 0 (off) or a side in pixels, e.g. 64")
    if max_aspect and max_aspect < 1:
        raise UserError(f"--max-aspect {max_aspect} must be 0 (off) or at least 1 (long side / short side), e.g. 2.5")


def prepare(data, out=None, crop="square", size=64, workers=None, force=False, progress=True, variants=1, seed=0,
            min_box=0, max_aspect=0.0) -> Dataset:
    """Read any layout, crop every box in parallel and write the cache.

    Nothing is done when `out` holds a cache of the same sources and options; a cache of the same data path and
    options whose files have changed is made again; any other existing `out` needs force=True.
    """
    if crop not in crops.CROPS:
        raise UserError(f"--crop {crop} is not known: use one of {', '.join(crops.CROPS)}")
    if not 8 <= size <= 1024:
        raise UserError(f"--size {size} is out of range: use 8 to 1024 (the competition uses 64)")
    check_options(variants, min_box, max_aspect)
    if is_cache(data):
        raise UserError(f"{data} is already a prepared cache: pass it to train or score as it is")
    options = crops.Options(crop, size, variants, seed, min_box, max_aspect)
    layout = readers.locate(data)
    fp = fingerprint(layout, crop, size, options)
    out = Path(out) if out else default_dir() / f"{layout.kind}-{crop}{size}-{fp}.npz"
    if out.suffix != ".npz":
        raise UserError(f"--out {out} must end in .npz")
    data = str(Path(data).expanduser().resolve())
    if out.exists() and not force:
        old_fingerprint, old = stored(out)
        if old_fingerprint == fp:
            if progress:
                print(f"{out} is up to date (same sources and options): nothing to do")
            return load(out)
        if (old.get("data"), old.get("crop"), old.get("size"), old.get("options", {})) != (data, crop, size,
                                                                                        options.changes()):
            if old_fingerprint:
                raise UserError(f"{out} was prepared from other sources or options: pass --force to replace it, "
                                "or choose another --out")
            refuse_overwrite(out, force)
        elif progress:
            print(f"{data} changed since {out} was prepared: preparing it again")
    start = time.time()
    source = readers.read(layout)
    result = crop_all(source, options, workers, progress)
    report = {"data": data, "layout": layout.kind, "crop": crop, "size": size, "channels": source.channels,
              "options": options.changes(), "images_read": result.images_read, "samples": len(result.labels),
              "no_annotation": result.no_annotation, "boxes_dropped": result.filtered,
              "breeds": {name: int(n) for name, n in zip(source.classes, np.bincount(result.labels,
                                                                                     minlength=len(source.classes)))},
              "skipped": source.skipped + result.skipped, "notes": source.notes}   # no timing: same input, same bytes
    if not result.labels:
        first = report["skipped"][0] if report["skipped"] else None
        example = f"; e.g. {first['file']}: {first['reason']}" if first else ""
        raise UserError(f"no usable images in {data} ({len(report['skipped'])} files skipped{example}); "
                        f"{readers.LAYOUTS_HELP}")
    dataset = Dataset(result.images, np.array(result.labels, np.int64), source.classes, result.sources, fp, report)
    save(dataset, out)
    if progress:
        print(summary(report, out, time.time() - start))
    return dataset


def crop_all(source, options: crops.Options, workers=None, progress=True, chunk=64) -> crops.Crops:
    """Crop every record, in a pool of processes (one per core by default) when there is more than one chunk."""
    workers = workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    chunks = [source.records[i:i + chunk] for i in range(0, len(source.records), chunk)]
    work = functools.partial(crops.crop_records, options=options, channels=source.channels,
                             breeds=source.breed_index())
    results = []
    with tqdm(total=len(source.records), unit="img", desc="prepare", disable=None if progress else True,
              leave=False) as bar:                                        # None: shown on a terminal only
        if workers > 1 and len(chunks) > 1:
            # fork on Linux: scripts without a __main__ guard work, and the workers only touch PIL and zipfile
            context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
            with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=context) as pool:
                for records, part in zip(chunks, pool.map(work, chunks)):
                    results.append(part)
                    bar.update(len(records))
        else:
            for records in chunks:
                results.append(work(records))
                bar.update(len(records))
            readers.close_archives()
    merged = crops.Crops(np.zeros((0, source.channels, options.size, options.size), np.uint8), [], [])
    merged.images = np.concatenate([merged.images] + [r.images for r in results])
    for r in results:
        merged.labels += r.labels
        merged.sources += r.sources
        merged.skipped += r.skipped
        merged.images_read += r.images_read
        merged.no_annotation += r.no_annotation
        for flag, count in r.filtered.items():
            merged.filtered[flag] = merged.filtered.get(flag, 0) + count
    return merged


def summary(report: dict, out, seconds: float) -> str:
    """A few lines for the terminal: what was made, from what, and what was skipped."""
    lines = [f"prepared {report['samples']} samples ({len(report['breeds'])} classes, {report['crop']} crops "
             f"{report['channels']}x{report['size']}x{report['size']}) from {report['images_read']} images "
             f"in {seconds:.1f} s -> {out}"]
    if report.get("boxes_dropped"):
        lines.append("boxes dropped: " + ", ".join(f"{n} by --{flag.replace('_', '-')}"
                                                   for flag, n in report["boxes_dropped"].items()))
    if report["no_annotation"]:
        how = ": cropped as a centre square" if report["crop"] != "whole" else ""
        lines.append(f"{report['no_annotation']} images had no usable box{how}")
    if report["skipped"]:
        shown = "; ".join(f"{s['file']}: {s['reason']}" for s in report["skipped"][:3])
        lines.append(f"skipped {len(report['skipped'])}: {shown}{' ...' if len(report['skipped']) > 3 else ''}")
    return "\n".join(lines + [f"note: {note}" for note in report["notes"]])


def load_or_prepare(path, crop="square", size=64, **options) -> Dataset:
    """Load a .npz cache (a broken one is a UserError); prepare anything else first (or load its fresh cache);
    options: those of prepare (variants, seed, min_box, max_aspect)."""
    return load(path) if Path(path).suffix == ".npz" else prepare(path, crop=crop, size=size, **options)


def write_report(report: dict, path, force=False) -> None:
    """Write the JSON report; a file that is not an earlier report is only replaced with --force."""
    path = Path(path)
    try:
        ours = "images_read" in json.loads(path.read_text())
    except Exception:
        ours = False
    if not ours:
        refuse_overwrite(path, force)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report, indent=1))


def add_arguments(parser) -> None:
    """Flags of `python -m kit prepare`."""
    parser.add_argument("--data", required=True, metavar="PATH",
                        help="folder holding all-dogs.zip + Annotation.zip (or all-dogs.zip itself), all-dogs/ + "
                             "Annotation/, Stanford Images/ + Annotation/, MNIST/raw, or a folder of images")
    parser.add_argument("--out", metavar="FILE.npz", help="the cache; default $DOGKIT_CACHE or ~/.cache/dogkit")
    parser.add_argument("--report", metavar="FILE.json", help="also write the report (counts, skipped files) here")
    parser.add_argument("--crop", choices=crops.CROPS, default="square",
                        help="square around each box (default), the tight box, or the whole image")
    parser.add_argument("--size", type=int, default=64, help="crop side in pixels (default 64)")
    parser.add_argument("--variants", type=int, default=1, metavar="K",
                        help="crops per dog box: the first as --crop makes it, the others random box-safe zooms, "
                             f"shifts and turns of up to {crops.ROTATE_DEGREES} degrees (albumentations); default 1")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random variants (same seed, same cache)")
    parser.add_argument("--min-box", type=int, default=0, metavar="PX",
                        help="drop dog boxes whose shorter side is under PX pixels (5th place: 64); 0 is off")
    parser.add_argument("--max-aspect", type=float, default=0.0, metavar="R",
                        help="drop dog boxes longer than R times their width or height (1st place dropped extreme "
                             "ones); 0 is off")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: one per core)")
    parser.add_argument("--force", action="store_true", help="replace an --out made from other sources or options")


def main(args) -> int:
    """Prepare the cache, write the report, print the summary."""
    dataset = prepare(args.data, args.out, args.crop, args.size, args.workers, args.force, variants=args.variants,
                      seed=args.seed, min_box=args.min_box, max_aspect=args.max_aspect)
    if args.report:
        write_report(dataset.report, args.report, args.force)
    return 0
