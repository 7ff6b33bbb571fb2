"""Small file helpers shared by every writer: atomic replace and the --force rule."""
import contextlib
import os
from pathlib import Path

from kit.errors import UserError


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def refuse_overwrite(path, force: bool) -> None:
    """Raise a UserError when `path` exists and --force was not given."""
    if Path(path).exists() and not force:
        raise UserError(f"{path} already exists: pass --force to overwrite it, or choose another --out")


def file_hash(path, hasher) -> str:
    """Hex digest of a file's bytes through a hashlib object (read in 4 MiB blocks)."""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            hasher.update(block)
    return hasher.hexdigest()
