"""Finding and running ffmpeg/ffprobe: executables, argument lists, error lines, input checks.

Commands are argument lists run without a shell. Paths go to ffmpeg as `file:` URLs so names
with ':' or a leading '-' are never read as protocols or options.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

from dubcli.errors import DependencyError, InputError, OutputError, ProcessingError
from dubcli.procs import child_options

INSTALL_HINT = (
    "install it with `pip install imageio-ffmpeg` or your system's package (apt install ffmpeg)"
)


def find_ffmpeg() -> str:
    """$DUBCLI_FFMPEG, else `ffmpeg` on PATH, else imageio-ffmpeg's static build."""
    return _find_ffmpeg(os.environ.get("DUBCLI_FFMPEG") or None)


@functools.lru_cache(maxsize=8)
def _find_ffmpeg(env: str | None) -> str:
    if env:
        exe = shutil.which(env)
        if exe is None:
            raise DependencyError(f"DUBCLI_FFMPEG={env}: not an executable ffmpeg")
        return exe
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # ImportError, or RuntimeError when the wheel has no binary
        raise DependencyError(f"ffmpeg: not found ({INSTALL_HINT})") from exc


def find_ffprobe() -> str | None:
    """A system ffprobe (next to $DUBCLI_FFMPEG, or on PATH); None if there is none."""
    return _find_ffprobe(os.environ.get("DUBCLI_FFMPEG") or None)


@functools.lru_cache(maxsize=8)
def _find_ffprobe(env: str | None) -> str | None:
    if env and (exe := shutil.which(env)):
        sibling = Path(exe).with_name(Path(exe).name.replace("ffmpeg", "ffprobe"))
        if sibling != Path(exe) and os.access(sibling, os.X_OK):
            return str(sibling)
    return shutil.which("ffprobe")


def _url(path: str | os.PathLike) -> str:
    return "file:" + os.path.abspath(path)


def _ffmpeg(*args: str) -> list[str]:
    return [find_ffmpeg(), "-nostdin", "-hide_banner", *args]


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, **child_options(), **kw)
    except OSError as exc:  # the binary vanished or is not executable
        raise DependencyError(
            f"{cmd[0]}: cannot run ({exc.strerror or exc}; {INSTALL_HINT})"
        ) from None


def _error_line(stderr: bytes | str) -> str:
    """The most specific line of an ffmpeg error log, without the `[mp4 @ 0x..]` prefix."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    generic = re.compile(
        r"^(Error opening (input|output) files?\b|Conversion failed|At least one output|"
        r"Exiting normally|Error while filtering|Nothing was written|Input #|Output #)"
    )
    lines = [re.sub(r"^(\[[^\]]*\]\s*)+", "", ln).strip() for ln in text.splitlines()]
    lines = [
        ln for ln in lines if ln and not generic.match(ln) and "detected only with low" not in ln
    ]
    # a named cause ("moov atom not found") beats the generic "Error opening input: ..."
    for ln in lines:
        if not ln.startswith("Error opening input"):
            return ln
    return lines[-1].removeprefix("Error opening input: ") if lines else "unknown ffmpeg error"


def check_readable(path: str | os.PathLike) -> os.stat_result:
    """InputError unless `path` is an existing, readable, non-empty file."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a media file")
    try:
        st = path.stat()
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if st.st_size == 0:
        raise InputError(f"{path}: is empty (0 bytes)")
    return st


# ffmpeg's words for the write errors that are the disk's fault, not the media's (exit 6)
_DISK_ERRORS = ("No space left on device", "Disk quota exceeded", "File too large",
                "Read-only file system")  # fmt: skip


def run_ffmpeg(*args: str, target: str | os.PathLike, what: str, stdin: bytes | None = None):
    """Run `ffmpeg -v error *args` to write `target`; ProcessingError naming it if ffmpeg fails,
    OutputError (exit 6) when the output could not be written (disk full, read-only, denied)."""
    res = _run(_ffmpeg("-v", "error", *args), input=stdin)
    if res.returncode != 0:
        err = res.stderr.decode("utf-8", "replace") if isinstance(res.stderr, bytes) else ""
        out_url = args[-1] if args and str(args[-1]).startswith("file:") else None
        denied = "Permission denied" in err and out_url is not None and out_url in err
        disk = next((d for d in _DISK_ERRORS if d in err), None)
        if disk or denied:
            reason = (disk or "Permission denied").lower()
            raise OutputError(f"{target}: cannot be written ({reason})")
        raise ProcessingError(f"{target}: ffmpeg failed to {what} ({_error_line(res.stderr)})")
