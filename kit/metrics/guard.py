"""The memorisation guard of `make_zip --real`: estimate d on a sample of the images on each leaderboard's network
whose weights are at hand, and warn loudly below that leaderboard's threshold."""
from kit.errors import UserError


def memorisation_guard(images, real, weights=None, device="auto", n=1000, threshold=0.0) -> dict:
    """{leaderboard: d} of the first n images against the real ones, printed, with a loud warning below each
    leaderboard's threshold (or `threshold` when given); a network without weights is skipped and said so."""
    from kit.metrics.score import LEADERBOARDS, score_images
    weights = weights or {}
    shown, found = min(n, len(images)), {}
    for name, (network, default_threshold) in LEADERBOARDS.items():
        limit = threshold or default_threshold
        try:
            extractor = network(weights.get(name), device)
        except (UserError, ImportError) as e:
            print(f"memorisation guard skipped: {e} ({name} leaderboard)")
            continue
        d = score_images(images[:n], real, extractor=extractor, threshold=limit, device=device)["distance"]
        found[name] = d
        if d < limit:
            bar = "!" * 72
            print(f"{bar}\nWARNING: memorisation distance d = {d:.4f} < {limit:g} on {shown:,} images ({name} "
                  f"leaderboard): these images are too close to the training data and MiFID will divide the FID by d."
                  f"\n{bar}")
        else:
            print(f"memorisation guard ({name}): d = {d:.4f} on {shown:,} images, margin {d - limit:+.4f} "
                  f"(penalty starts below {limit:g})")
    return found
