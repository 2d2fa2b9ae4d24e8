"""Dubbing: cue planning, timeline, mixing, loudness, reports (engines: dubcli.engines), and
who owns the outputs (outputs.py: names, the recorded identity, skip / redo / refuse).

Entry points: `pipeline.dub_video` (one clip) and `batch.dub_batch` (folders); `dubcli dub`
calls them. Nothing heavy is imported here.
"""
