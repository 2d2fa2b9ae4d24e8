"""Data: the prepared-dataset format that `prepare` writes and `train` / `eval` read (DESIGN 7).

  manifest.py   dataset.json, manifest.jsonl lines (`Utterance`), shards and their reader
  writer.py     the writing side: shards, manifest lines, dataset.json, the folder lock
  dataset.py    the torch Dataset over one split and the collate into `model.batch.Batch`
  sampler.py    token-count batches, length-bucketed, sharded across ranks

Making data lives elsewhere: the SynthDub generator in dubcli/synth/, the prepare pipeline and
its layouts in dubcli/prepare/.
"""
