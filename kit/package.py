"""Write the competition's zip (10,000 PNG 64×64 RGB) and check any zip against the rules; `kit zip` / make_zip."""
import hashlib
import struct
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kit.errors import UserError
from kit.files import atomic_path, refuse_overwrite
from kit.images import PNG_MAGIC, read_images, read_members, summarise, workers
from kit.sample import add_sampling_arguments

N_IMAGES = 10000
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: the same images give the same zip bytes


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _encode_png(hwc: np.ndarray) -> bytes:
    """H×W×3 uint8 -> PNG bytes: 8-bit RGB, every row Sub-filtered, zlib level 1 (twice PIL's speed, smaller)."""
    h, w, _ = hwc.shape
    flat = hwc.reshape(h, w * 3)
    rows = np.empty((h, w * 3 + 1), np.uint8)
    rows[:, 0] = 1                                            # filter type 1: each byte minus the one 3 to its left
    rows[:, 1:4] = flat[:, :3]
    np.subtract(flat[:, 3:], flat[:, :-3], out=rows[:, 4:])   # uint8 wraps modulo 256, as PNG wants
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)     # bit depth 8, colour type 2 (RGB)
    return (PNG_MAGIC + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
            + _png_chunk(b"IEND", b""))


def _as_nhwc_rgb(images) -> np.ndarray:
    """N×C×H×W uint8 (numpy or torch, C 1 or 3) -> contiguous N×H×W×3 uint8."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"write_zip needs uint8 N×C×H×W images with C 1 or 3, got {images.dtype} {images.shape}")
    if images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


def write_zip(images, path, force=False, progress=True) -> Path:
    """Write images as 0.png..N-1.png, encoded in parallel, straight into an uncompressed zip, atomically."""
    path = Path(path)
    refuse_overwrite(path, force)
    hwc = _as_nhwc_rgb(images)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        with ThreadPoolExecutor(workers()) as pool:
            pngs = pool.map(_encode_png, hwc)
            for i, png in enumerate(tqdm(pngs, total=len(hwc), desc=f"zip {path.name}", unit="img",
                                         disable=not progress, leave=False)):
                info = zipfile.ZipInfo(f"{i}.png", date_time=ZIP_DATE)
                info.external_attr = 0o644 << 16
                zf.writestr(info, png)
    return path


def inspect_zip(path, n_images=N_IMAGES) -> tuple:
    """(problems, warnings): each problem breaks the rules; a warning (repeated images) is legal but costs score."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder: --check takes a zip file (pack a folder with --from-dir)")
    if path.is_file() and not zipfile.is_zipfile(path):
        return [f"{path} is not a zip file"], []
    names, arrays, problems, n_files = read_members(path, lenient=False)
    count = [] if n_files == n_images else [f"{path.name} holds {n_files:,} files; exactly {n_images:,} are needed"]
    first_seen, repeats = {}, []
    for name, array in zip(names, arrays):
        digest = hashlib.blake2b(array.tobytes(), digest_size=16).digest()
        if digest in first_seen:
            repeats.append(("images identical to an earlier one (legal, but they only lower the score)",
                            f"{name} (= {first_seen[digest]})"))
        else:
            first_seen[digest] = name
    return count + summarise(problems), summarise(repeats)


def check_zip(path, n_images=N_IMAGES, strict=False) -> list:
    """Every way the zip breaks the rules, one line each (repeated images too when strict); empty: accepted."""
    problems, warnings = inspect_zip(path, n_images)
    return problems + (warnings if strict else [])


def add_arguments(parser):
    """Flags of `python -m kit zip` and submit/make_zip.py."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="last.pt or best.pt of a run: generate the images from it")
    source.add_argument("--from-dir", metavar="DIR", help="pack a folder of images (converted to 64×64 RGB PNG)")
    source.add_argument("--check", metavar="ZIP", help="only check ZIP against the rules; exit 0 when it passes")
    parser.add_argument("--out", default="images.zip", help="zip to write (default images.zip)")
    parser.add_argument("--n", type=int, default=N_IMAGES, help="images to generate (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truncation", type=float, default=0.0, help="truncated sampling; 0 is off")
    add_sampling_arguments(parser)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--real", help="real data (cache or archive) for the memorisation guard")
    parser.add_argument("--inception-weights", help="FID Inception weights file (default: the torch hub cache)")
    parser.add_argument("--nasnet-weights", help="NASNet-A Large weights for the private leaderboard's guard "
                                                 "(default: $DOGKIT_NASNET_WEIGHTS, then timm's cache)")
    parser.add_argument("--guard-n", type=int, default=1000, help="images the memorisation guard scores (default 1000)")
    parser.add_argument("--tune", action="store_true",
                        help="with --checkpoint and --real: draw the zip under the sampling setting (truncation, "
                             "standing statistics, EMA or raw G, class balance) with the lowest estimated MiFID of a "
                             "small grid around the one asked for, each scored on --eval-n images")
    parser.add_argument("--eval-n", type=int, default=2000, help="--tune: images each setting is scored on")
    parser.add_argument("--select", default="", help="--tune: the leaderboard whose MiFID decides (private or "
                                                     "public; default private when its weights are at hand)")
    parser.add_argument("--strict", action="store_true", help="treat repeated images as a problem (Kaggle accepts them)")
    parser.add_argument("--force", action="store_true", help="overwrite --out")


def tuned_setting(state, default, args):
    """The setting of kit.tune's grid around `default` with the lowest estimated MiFID on --select's leaderboard for
    this checkpoint, each setting and the choice printed."""
    from kit import tune
    from kit.jobs import EVAL_SEED
    from kit.metrics.evaluate import Evaluator
    evaluator = Evaluator(args.real, args.device, args.eval_n,
                          weights={"public": args.inception_weights, "private": args.nasnet_weights})
    board = args.select or next((name for name in ("private", "public") if name in evaluator.leaderboards), "")
    if board not in evaluator.leaderboards:
        missing = "; ".join(evaluator.skipped.values()) or f"--select {board} is not private or public"
        raise UserError(f"--tune needs the {board or 'leaderboards'}' network: {missing}")
    scored = tune.tune(state, evaluator, tune.settings(state, default), args.seed + EVAL_SEED, args.device)
    for line in tune.table(scored, board):
        print(f"sampling: {line}")
    setting, scores = tune.choose(scored, board)
    print(f"sampling: the zip is drawn with {setting.words()}: {board} MiFID {scores[board]['mifid']:.2f}, the "
          f"default's {scored[0][1][board]['mifid']:.2f} ({len(scored)} settings, {args.eval_n} images each)")
    return setting


def print_check(name, problems, warnings) -> None:
    """Each problem and each warning on its own line; warnings framed so they cannot be missed."""
    for line in problems:
        print(f"problem: {line}")
    for line in warnings:
        print(f"{'!' * 72}\nWARNING: {line}\n{'!' * 72}")


def main(args) -> int:
    """Generate or pack the images, write the zip, check it; exit 1 when the check finds problems."""
    if args.check:
        problems, warnings = inspect_zip(args.check)
        problems += warnings if args.strict else []
        print_check(args.check, problems, [] if args.strict else warnings)
        verdict = f"REJECTED, {len(problems)} kind(s) of problem" if problems else "OK, would be accepted"
        print(f"{args.check}: {verdict}")
        return 1 if problems else 0
    refuse_overwrite(args.out, args.force)
    if args.tune and not (args.checkpoint and args.real):
        raise UserError("--tune needs --checkpoint (the run to sample) and --real DATA (the competition's images, to "
                        "score each setting against)")
    if args.checkpoint:
        from kit.checkpoint import load
        from kit.sample import generate, sampling_options
        from kit.tune import Sampling
        state = load(args.checkpoint)
        options = sampling_options(state, args.standing_stats, args.class_balance)
        setting = Sampling(args.truncation, max(0, options["standing_stats"]), options["class_balance"])
        if args.tune:
            setting = tuned_setting(state, setting, args)
        images, _ = generate(state, args.n, seed=args.seed, device=args.device, **setting.options())
    else:
        if not Path(args.from_dir).is_dir():
            raise UserError(f"--from-dir {args.from_dir} is not a folder: pass the folder holding your images")
        images, notes = read_images(args.from_dir, lenient=True)
        for line in notes:
            print(f"converted or skipped: {line}")
    if args.real:
        from kit.metrics.guard import memorisation_guard
        memorisation_guard(images, args.real, {"public": args.inception_weights, "private": args.nasnet_weights},
                           device=args.device, n=args.guard_n)
    else:
        print("memorisation guard off: pass --real DATA to estimate d (MiFID's penalty starts below 0.1 on the "
              "public leaderboard, 0.25 on the private one)")
    write_zip(images, args.out, force=args.force)
    problems, warnings = inspect_zip(args.out)
    problems += warnings if args.strict else []
    print_check(args.out, problems, [] if args.strict else warnings)
    size_mb = Path(args.out).stat().st_size / 1e6
    print(f"wrote {args.out}: {len(images):,} images, {size_mb:.1f} MB, "
          f"{'REJECTED by the check' if problems else 'passes the check'}")
    return 1 if problems else 0
