"""Engines: one subtitle cue in, speech for its window out (DESIGN 4, the engines layer).

Both dubbing/ (the dub pipeline) and eval/ (scoring a model) sit above this package; it imports
neither. One concept per file; nothing is imported here:

- base.py      the Engine protocol, CueJob / CueAudio
- choose.py    the engine names and the default rule (`choose_engine`), `create_engine`,
               `engine_identity`
- diflow.py    DiFlowDubber through dubcli.inference.Dubber (a checkpoint, dubcli.model.loading)
- baseline.py  espeak-ng speech fitted to the window by WORLD and converted toward the voice
- sync.py      landmark lip sync (mouth aperture vs speech envelope): per cue in a dub report,
               per utterance in `dubcli eval`
"""
