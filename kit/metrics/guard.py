"""The memorisation guard of `make_zip --real`: estimate d on a sample of the images and warn loudly below the threshold."""
from kit.errors import UserError

PUBLIC_THRESHOLD = 0.1   # the public leaderboard's memorisation threshold (FID Inception features)


def memorisation_guard(images, real, weights=None, device="auto", n=1000, threshold=PUBLIC_THRESHOLD):
    """d of the first n images against the real ones, printed, with a loud warning below `threshold`; None if skipped."""
    try:
        from kit.metrics.features import InceptionFeatures
        from kit.metrics.score import score_images
        extractor = InceptionFeatures(weights=weights, device=device)
    except (UserError, ImportError) as e:
        print(f"memorisation guard skipped: {e}")
        return None
    report = score_images(images[:n], real, extractor=extractor, threshold=threshold, device=device)
    d, shown = report["distance"], min(n, len(images))
    if d < threshold:
        bar = "!" * 72
        print(f"{bar}\nWARNING: memorisation distance d = {d:.4f} < {threshold:g} on {shown:,} images: these images "
              f"are too close to the training data and MiFID will divide the FID by d.\n{bar}")
    else:
        print(f"memorisation guard: d = {d:.4f} on {shown:,} images (penalty starts below {threshold:g})")
    return d
