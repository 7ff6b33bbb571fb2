"""PNG pictures with PIL only: an image grid and a line chart (loss curves)."""
import math

import numpy as np
from PIL import Image, ImageDraw

from kit.files import atomic_path

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def save_grid(images, path, nrow=8, pad=2):
    """Write uint8 images N×C×H×W (numpy or torch, C 1 or 3) as one PNG grid, `nrow` images per row."""
    images = np.asarray(images.cpu() if hasattr(images, "cpu") else images)
    n, c, h, w = images.shape
    rows = math.ceil(n / nrow)
    grid = np.zeros((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), np.uint8)
    for i, image in enumerate(images):
        r, k = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[top:top + h, left:left + w] = image.transpose(1, 2, 0)
    with atomic_path(path) as tmp:
        Image.fromarray(grid[:, :, 0] if c == 1 else grid).save(tmp, format="PNG")


def _ticks(lo, hi, n=5):
    """About n round numbers spanning [lo, hi]."""
    step = 10 ** math.floor(math.log10((hi - lo) / n)) if hi > lo else 1.0
    step *= next(m for m in (1, 2, 5, 10) if (hi - lo) / (step * m) <= n)
    return [k * step for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]


def save_line_chart(series, path, xlabel="", ylabel="", title="", size=(800, 500)):
    """Write {name: (xs, ys)} as a line chart PNG with axes, ticks and a legend; non-finite points are skipped."""
    clean = {name: [(float(x), float(y)) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
             for name, (xs, ys) in series.items()}
    points = [p for pts in clean.values() for p in pts] or [(0.0, 0.0), (1.0, 1.0)]
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    y0, y1 = y0 - 0.05 * (y1 - y0), y1 + 0.05 * (y1 - y0)   # lines clear of the frame
    W, H = size
    left, right, top, bottom = 70, 20, 40, 50
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)

    def px(x, y):
        return (left + (x - x0) / (x1 - x0) * (W - left - right),
                H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom))

    draw.rectangle([left, top, W - right, H - bottom], outline="black")
    for t in _ticks(x0, x1):
        u = px(t, y0)[0]
        draw.line([u, H - bottom, u, H - bottom + 4], fill="black")
        draw.text((u - 10, H - bottom + 6), f"{t:g}", fill="black")
    for t in _ticks(y0, y1):
        v = px(x0, t)[1]
        draw.line([left - 4, v, left, v], fill="black")
        draw.text((5, v - 6), f"{t:.3g}", fill="black")
    for i, (name, pts) in enumerate(clean.items()):
        colour = COLOURS[i % len(COLOURS)]
        if len(pts) > 1:
            draw.line([px(x, y) for x, y in pts], fill=colour, width=2)
        draw.line([W - right - 120, top + 10 + 15 * i, W - right - 100, top + 10 + 15 * i], fill=colour, width=2)
        draw.text((W - right - 95, top + 4 + 15 * i), name, fill="black")
    draw.text((left, 12), title, fill="black")
    draw.text(((W - len(xlabel) * 6) / 2, H - 20), xlabel, fill="black")
    draw.text((5, 20), ylabel, fill="black")
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
