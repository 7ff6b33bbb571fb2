"""The run's clock: a hard deadline (the budget less what the end needs), when to stop and check (one host sync),
and when a checkpoint or a sample grid is due."""
import time

from kit.config import parse_duration

CHECK_EVERY_CUDA = 25   # steps between host syncs on a GPU (NaN check, budget, logging); every step on CPU


class Budget:
    """Deadline and timers of one run, counted from `start` (time.monotonic())."""

    def __init__(self, cfg, start, device_type):
        self.start = start
        self.seconds = parse_duration(cfg.budget)
        self.checkpoint_every = parse_duration(cfg.checkpoint_every)
        self.sample_every = parse_duration(cfg.sample_every)
        self.check_every = 1 if device_type == "cpu" else CHECK_EVERY_CUDA
        self.tail = 0.0
        self.deadline = start + self.seconds
        self.step_seconds = 0.0
        self.last_check = self.last_checkpoint = self.last_sample = time.monotonic()

    def reserve(self, tail: float) -> None:
        """Keep `tail` seconds at the end for the final images, zip and checkpoint."""
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

    def checkpoint_due(self, now: float) -> bool:
        """Whether --checkpoint-every has passed since the last checkpoint."""
        return now - self.last_checkpoint >= self.checkpoint_every

    def checkpointed(self, now: float) -> None:
        """Note that a checkpoint was written at `now`."""
        self.last_checkpoint = now

    def sample_due(self, now: float) -> bool:
        """Whether --sample-every has passed since the last sample grid (the clock restarts when it says yes)."""
        due = now - self.last_sample >= self.sample_every
        self.last_sample = now if due else self.last_sample
        return due

    def left(self, now: float) -> float:
        """Seconds until the deadline."""
        return max(0.0, self.deadline - now)
