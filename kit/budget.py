"""The run's clock: a hard deadline (the budget less what the end needs), when to stop and check (one host sync),
and the cadences of the loop's periodic jobs."""
import time

from kit.config import parse_duration

CHECK_EVERY_CUDA = 25   # steps between host syncs on a GPU (NaN check, budget, logging); every step on CPU


class Every:
    """A cadence in seconds (a duration's text, or math.inf for never), counted from the last time the job ran."""

    def __init__(self, every, now: float):
        self.seconds = every if isinstance(every, float) else parse_duration(every)
        self.last = now

    def due(self, now: float) -> bool:
        """Whether the cadence has passed since the job last ran (0: at every check)."""
        return now - self.last >= self.seconds

    def ran(self, now: float) -> None:
        """Note that the job ran at `now`."""
        self.last = now


class Budget:
    """Deadline and step timing of one run, counted from `start` (time.monotonic()).

    A budget written "+DURATION" is training time: the deadline falls DURATION after the reserve is known, and the
    whole budget is that plus what the end needs (`kit demo` uses it, so it never refuses on a slow machine)."""

    def __init__(self, cfg, start, device_type):
        self.start = start
        self.training_only = str(cfg.budget).strip().startswith("+")
        self.seconds = self.asked = parse_duration(str(cfg.budget).strip().lstrip("+"))
        self.check_every = 1 if device_type == "cpu" else CHECK_EVERY_CUDA
        self.tail = 0.0
        self.deadline = start + self.seconds
        self.step_seconds = 0.0
        self.last_check = time.monotonic()

    def reserve(self, tail: float) -> None:
        """Keep `tail` seconds at the end for what follows training (final images, zip, checkpoint, scoring)."""
        if self.training_only:
            self.seconds = time.monotonic() - self.start + self.asked + tail
        self.tail = tail
        self.deadline = self.start + self.seconds - tail

    def check_due(self, since_check: int) -> bool:
        """Whether the loop should sync and check now."""
        return since_check == 0 or since_check >= self.check_every

    def checked(self, since_check: int, now: float) -> None:
        """Note a check: the seconds per step since the last one."""
        if since_check:
            self.step_seconds = (now - self.last_check) / since_check
        self.last_check = now

    def out_of_time(self, now: float) -> bool:
        """Whether the steps until the next check would run past the deadline."""
        return now + self.step_seconds * (self.check_every + 1) >= self.deadline

    def fits(self, seconds: float, now: float) -> bool:
        """Whether work of `seconds` started now ends before the deadline."""
        return now + seconds < self.deadline

    def left(self, now: float) -> float:
        """Seconds until the deadline."""
        return max(0.0, self.deadline - now)
