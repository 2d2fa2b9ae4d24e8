"""Safe file writes (DESIGN 9): atomic writes, write errors as OutputError, leftovers of killed
runs swept, and a lock per output.

- `atomic_path`: a killed run never leaves a truncated file that looks finished. Its temporary
  is `.<stem>.<8 random chars>.part<suffix>` next to the target; `sweep_partials` removes those a
  killed run left (call it while holding the target's lock).
- Every OSError while writing (ENOSPC, EROFS, EACCES, EDQUOT, EFBIG, ...) and libsndfile's write
  errors become an OutputError naming the path (exit code 6), never an internal error.
- `file_lock`: an exclusive advisory lock (flock) on a lock file; a second holder waits. The lock
  file is removed when released (a waiter that wakes up on a removed file retries on the new one).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from dubcli.errors import DubcliError, OutputError

_PART_RE = r"\.{stem}\.[A-Za-z0-9_]{{8}}\.part{suffix}"
_WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this file system or limit",
}


def write_error(path: str | os.PathLike, exc: BaseException) -> OutputError:
    """An OutputError (exit 6) naming `path` for an OSError or a libsndfile write error."""
    if isinstance(exc, OSError):
        reason = _WRITE_ERRNOS.get(exc.errno) or exc.strerror or str(exc) or type(exc).__name__
    else:  # libsndfile says "System error." for ENOSPC: look at the disk ourselves
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = f"{_WRITE_ERRNOS[errno.ENOSPC]}; libsndfile: {text}" if _full(path) else text
    return OutputError(f"{path}: cannot be written ({reason})")


def _full(path: str | os.PathLike, margin: int = 1 << 20) -> bool:
    """Whether the file system holding `path` (or its nearest existing parent) is (nearly) full."""
    import shutil

    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free < margin
    except OSError:
        return False


def is_write_error(exc: BaseException) -> bool:
    """OSError, or soundfile's LibsndfileError (a RuntimeError of the soundfile module)."""
    if isinstance(exc, DubcliError):
        return False
    return isinstance(exc, OSError) or (
        isinstance(exc, RuntimeError) and type(exc).__module__.split(".")[0] == "soundfile"
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it over `path`, else delete it.

    The temporary keeps the final suffix (ffmpeg and soundfile pick formats from it). With
    force=False an existing `path` raises OutputError before any work is done.
    """
    path = Path(path)
    if path.exists() and not force:
        raise OutputError(f"{path}: already exists (use --force to overwrite)")
    if path.is_dir():
        raise OutputError(f"{path}: is a directory, expected a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent
        )
    except OSError as exc:
        raise write_error(path, exc) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            if not tmp_path.exists() or tmp_path.stat().st_size == 0:
                raise OutputError(f"{path}: nothing was written")
            # mkstemp makes 0600 files; give the result the permissions open() would have.
            os.chmod(tmp_path, 0o666 & ~_umask())
            os.replace(tmp_path, path)
        except Exception as exc:
            if is_write_error(exc):
                raise write_error(path, exc) from exc
            raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def remove_workdir(path: str | os.PathLike) -> None:
    """Remove a scratch folder and everything in it; a folder already gone is fine."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def partial_files(path: str | os.PathLike) -> list[Path]:
    """The temporaries atomic_path(path) makes, left in path's folder by killed runs."""
    path = Path(path)
    pattern = re.compile(_PART_RE.format(stem=re.escape(path.stem), suffix=re.escape(path.suffix)))
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    return [path.parent / n for n in names if pattern.fullmatch(n)]


def sweep_partials(path: str | os.PathLike) -> list[Path]:
    """Delete what partial_files(path) finds; returns what was removed. Only safe while no other
    process writes `path` (hold its lock)."""
    removed = []
    for p in partial_files(path):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed


@contextlib.contextmanager
def file_lock(
    path: str | os.PathLike, *, on_wait: Callable[[str], None] | None = None
) -> Iterator[Path]:
    """Hold an exclusive lock on `path` (created if missing, removed on release).

    When another process holds it, on_wait(holder) is called once (holder: what the lock file
    says, e.g. "pid 1234") and the call blocks until it is free; a signal handler that raises
    (Ctrl-C, SIGTERM) ends the wait. The lock dies with its holder (kill -9 included)."""
    import fcntl

    path = Path(path)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise write_error(path, exc) from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                    on_wait(holder or "another process")
                    on_wait = None
                fcntl.flock(fd, fcntl.LOCK_EX)
            # the previous holder removes the file before releasing it: if what we locked is no
            # longer what the path names, lock the new file instead
            st = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
            if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise write_error(path, exc) from exc
        except BaseException:
            os.close(fd)
            raise
        break
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


CACHE_ENV = "DUBCLI_CACHE_DIR"


def cache_dir() -> Path:
    """dubcli's cache of derived files: $DUBCLI_CACHE_DIR, else the platform's user cache dir."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("dubcli"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, force: bool = True) -> Path:
    with atomic_path(path, force=force) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, *, force: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), force=force)
