"""Everything that talks to ffmpeg: find it, probe files, stream frames and audio, mux and encode.

Commands are argument lists run without a shell. Decoding streams through pipes, so memory is
bounded by one frame or one audio block, never the whole file. Paths go to ffmpeg as `file:` URLs
so names with ':' or a leading '-' are never read as protocols or options. Audio is resampled by
ffmpeg's soxr at precision 28 (sample-identical to python-soxr "VHQ"), and channels are mixed
with the matrix normalized to gain 1 (stereo -> (L+R)/2, so a mono mix never clips).

Package layout: ffmpeg (finding/running the binaries), probe (MediaInfo), decode (frames and
audio out), encode (mux, write_video, test clips). Import from `dubcli.media`.
"""

from dubcli.media.decode import decode_audio, iter_audio_blocks, iter_frames, read_frames
from dubcli.media.encode import make_test_video, mux_audio, write_video
from dubcli.media.ffmpeg import INSTALL_HINT, check_readable, find_ffmpeg, find_ffprobe, run_ffmpeg
from dubcli.media.probe import (
    AudioStreamInfo,
    MediaInfo,
    info_from_ffmpeg_stderr,
    info_from_ffprobe_json,
    probe,
)

__all__ = [
    "INSTALL_HINT",
    "AudioStreamInfo",
    "MediaInfo",
    "check_readable",
    "decode_audio",
    "find_ffmpeg",
    "find_ffprobe",
    "info_from_ffmpeg_stderr",
    "info_from_ffprobe_json",
    "iter_audio_blocks",
    "iter_frames",
    "make_test_video",
    "mux_audio",
    "probe",
    "read_frames",
    "run_ffmpeg",
    "write_video",
]
