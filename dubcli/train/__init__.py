"""Training DiFlowDubber: both stages, DDP under torchrun, checkpoints, exact resume, export.

One concept per file; nothing heavy is imported here (the CLI imports this package lazily):

- run.py          `train(stage, data, output, TrainOptions)`: configs, data, stage-1 -> stage-2
                  init, the run folder; what `dubcli train` calls
- options.py      TrainOptions: which presets, what to start from, the command line's values
- loop.py         `fit(model, FitData, run, LoopConfig)`: the model-agnostic loop
- optim.py        AdamW, warm-up + cosine/linear schedule (paper B.3), EMA of weights
- state.py        training checkpoints (model, optimizer, EMA, RNG, data position; no pickles)
- rng.py          RNG states as tensors; isolated RNG for validation
- distributed.py  ranks, process group, collectives (device choice: dubcli.device)
- metrics.py      metrics.jsonl and loss.png
- progress.py     loss averaging windows and the rich progress bar
- export.py       fp16 self-contained inference checkpoints (read by dubcli.model.loading)
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy: `from dubcli.train import train` without importing torch at package import.
    if name == "train":
        from dubcli.train.run import train

        return train
    if name == "load_inference_model":
        from dubcli.model.loading import load_inference_model

        return load_inference_model
    raise AttributeError(name)
