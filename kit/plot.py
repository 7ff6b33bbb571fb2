"""PNG pictures: sample grids (torchvision's make_grid) and line charts (matplotlib, drawn off-screen)."""
import math

import numpy as np
import torch
from PIL import Image

from kit.files import atomic_path

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]   # matplotlib's tab10
SMOOTH_FROM = 20      # series with at least this many points get a smoothed line over the faint raw one


def save_grid(images, path, nrow=8, pad=2):
    """Write uint8 images N×C×H×W (numpy or torch, C 1 or 3) as one PNG grid, `nrow` images per row."""
    from torchvision.utils import make_grid
    images = torch.as_tensor(np.asarray(images.cpu() if hasattr(images, "cpu") else images))
    channels = images.shape[1]
    grid = make_grid(images, nrow=nrow, padding=pad, pad_value=0).permute(1, 2, 0).numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(grid[:, :, 0] if channels == 1 else grid).save(tmp, format="PNG")


def smoothed(ys, weight):
    """Exponential moving average of ys with the start-up bias removed (as TensorBoard smooths its curves)."""
    out, average = [], 0.0
    for i, y in enumerate(ys, 1):
        average = weight * average + (1 - weight) * y
        out.append(average / (1 - weight ** i))
    return out


def save_line_chart(series, path, xlabel="", ylabel="", title="", size=(800, 500), log_x=False, log_y=False):
    """Write {name: (xs, ys)} as a line chart PNG (grid, legend; long series smoothed); non-finite points skipped."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for i, (name, (xs, ys)) in enumerate(series.items()):
        points = [(float(x), float(y)) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)
                  and (x > 0 or not log_x) and (y > 0 or not log_y)]
        if not points:
            continue
        colour = tuple(c / 255 for c in COLOURS[i % len(COLOURS)])
        style = "-" if i < len(COLOURS) else "--"    # past ten series the colours repeat, dashed
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        if len(points) >= SMOOTH_FROM:
            axes.plot(xs, ys, color=colour, alpha=0.3, linewidth=1)
            axes.plot(xs, smoothed(ys, 1 - 10 / len(ys)), color=colour, linestyle=style, linewidth=2, label=name)
        else:
            axes.plot(xs, ys, color=colour, linestyle=style, linewidth=2, marker="o", markersize=4, label=name)
    axes.set_xscale("log" if log_x else "linear")
    axes.set_yscale("log" if log_y else "linear")
    axes.grid(True, which="major", alpha=0.4)
    if log_x or log_y:
        axes.grid(True, which="minor", alpha=0.15)
    axes.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if axes.lines:
        axes.legend(fontsize="small")
    figure.tight_layout()
    canvas.draw()
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(canvas.buffer_rgba())[:, :, :3]).save(tmp, format="PNG")


def save_progress_chart(history, selected_step, path, title=""):
    """Write a run's evaluation rows ({"step", LEADERBOARD: {mifid, fid, d, threshold}}) as one PNG: estimated MiFID,
    FID and d of each leaderboard over steps (one panel each), each leaderboard's memorisation threshold on d's
    panel, and the selected checkpoint's step marked (None: none)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    boards = list(dict.fromkeys(name for row in history for name, value in row.items()
                                if isinstance(value, dict) and "mifid" in value))
    thresholds = {board: next(row[board]["threshold"] for row in history if board in row) for board in boards}
    figure = Figure(figsize=(8, 9), dpi=100)
    canvas = FigureCanvasAgg(figure)
    panels = figure.subplots(3, 1, sharex=True)
    for axes, (key, label) in zip(panels, (("mifid", "estimated MiFID"), ("fid", "FID"), ("d", "d (1 - |cos|)"))):
        for i, board in enumerate(boards):
            colour = tuple(c / 255 for c in COLOURS[i % len(COLOURS)])
            rows = [row for row in history if board in row and math.isfinite(row[board][key])]
            axes.plot([row["step"] for row in rows], [row[board][key] for row in rows], color=colour, marker="o",
                      markersize=4, linewidth=2, label=board)
            if key == "d":
                axes.axhline(thresholds[board], color=colour, linestyle="--", linewidth=1,
                             label=f"{board} threshold {thresholds[board]:g}")
        if selected_step is not None:
            axes.axvline(selected_step, color="black", linestyle=":", linewidth=1.5, label="selected")
        axes.set_ylabel(label)
        axes.grid(True, alpha=0.4)
        if axes.lines:
            axes.legend(fontsize="small")
    panels[0].set_title(title)
    panels[-1].set_xlabel("step")
    figure.tight_layout()
    canvas.draw()
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(canvas.buffer_rgba())[:, :, :3]).save(tmp, format="PNG")
