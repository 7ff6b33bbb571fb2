"""What a person sees of a run: a tqdm bar on a terminal; in a log file (a Kaggle kernel) one line a minute."""
import sys
import time

from tqdm import tqdm

LINE_EVERY_S = 60.0   # seconds between progress lines when stderr is not a terminal


def clock(seconds: float) -> str:
    """Seconds as H:MM:SS."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Steps done, with the latest losses, images/s and budget left; quiet on every rank but the first."""

    def __init__(self, total, initial, enabled=True, stream=None, interval=LINE_EVERY_S):
        self.stream = stream or sys.stderr
        self.enabled, self.interval = enabled, interval
        self.terminal = enabled and self.stream.isatty()
        self.step, self.total, self.stats, self.last_line = initial, total, {}, time.monotonic()
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=self.stream,
                        disable=not self.terminal)

    def update(self, steps: int, **stats) -> None:
        """Count `steps` more; stats (d, g, img_s, left in seconds) replace the shown ones when given."""
        self.step += steps
        self.stats.update(stats)
        self.bar.update(steps)
        if stats and self.terminal:
            self.bar.set_postfix(d=f"{self.stats['d']:.3f}", g=f"{self.stats['g']:.3f}",
                                 img_s=f"{self.stats['img_s']:.0f}", left=clock(self.stats["left"]))
        now = time.monotonic()
        if self.enabled and not self.terminal and self.stats and now - self.last_line >= self.interval:
            self.last_line = now
            of = f"/{self.total}" if self.total else ""
            print(f"step {self.step}{of}  loss D {self.stats['d']:.4f}  G {self.stats['g']:.4f}  "
                  f"{self.stats['img_s']:.0f} images/s  budget left {clock(self.stats['left'])}",
                  file=self.stream, flush=True)

    def restart_at(self, step: int) -> None:
        """After a rollback: count again from `step`."""
        self.step = step
        self.bar.reset(total=self.total)
        self.bar.update(step)

    def close(self) -> None:
        self.bar.close()
