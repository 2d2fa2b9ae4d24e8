"""Dubbing: cue planning, timeline, mixing, loudness, reports (engines: dubcli.engines), and
who owns the outputs (outputs.py: names, the recorded identity, skip / redo / refuse).

Entry points: `pipeline.dub_video` (one clip: the whole dub pipeline, in one module) and
`batch.dub_batch` (folders); `dubcli dub` calls them with one frozen `config.DubConfig`.
`cuework.py` does one cue, `schedule.py` orders a video's cues and their threads; `report.py`
holds the typed `CueRecord` / `DubReport` the pipeline writes. Nothing heavy is imported here.
"""
