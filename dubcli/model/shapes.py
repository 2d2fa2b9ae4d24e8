"""The tensor shapes a model config builds, without building the model in memory.

`state_shapes(config, stage)` builds the module tree under `ShapesOnly`, a torch function mode
that puts the tensors the modules create on the meta device (no memory, whatever sizes the
config claims) and skips their in-place initialisers. Why not `with torch.device("meta")`: on
meta, initialisers such as `normal_` and factories such as `arange` and `eye` run torch._refs'
Python kernels, and the first of those imports torch._dynamo: 2.2 s of every model load on the
2-core CPU (measured; issue 15's start-up budget is 2 s in all). Here `arange` and `linspace`
run on the CPU (1-D, at most MAX_SIZE long: RoPE frequencies) and `eye` is a meta placeholder
(it only feeds an initialiser's `copy_`, which is skipped).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode

_ON_META = frozenset({torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn,
                      torch.randint, torch.tensor, torch.empty_strided})  # fmt: skip
_ON_CPU = frozenset({torch.arange, torch.linspace})


class ShapesOnly(TorchFunctionMode):
    """Module construction without memory or initialisation (module doc)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if kwargs.get("device") is None:
            if func in _ON_META:
                kwargs["device"] = "meta"
            elif func in _ON_CPU:
                kwargs["device"] = "cpu"
            elif func is torch.eye:
                n = args[0] if args else kwargs["n"]
                m = args[1] if len(args) > 1 else kwargs.get("m", n)
                return torch.empty((n, m), dtype=kwargs.get("dtype"), device="meta")
        name = getattr(func, "__name__", "")
        target = args[0] if args else kwargs.get("tensor")
        if (name.endswith("_") and not name.startswith("__") and isinstance(target, torch.Tensor)
                and target.is_meta):  # fmt: skip
            return target  # an in-place initialiser (normal_, zero_, copy_, ...) on a meta tensor
        return func(*args, **kwargs)


def state_shapes(config: Any, stage: str) -> dict[str, tuple[int, ...]]:
    """{state_dict key: shape} of `build_model(config, stage)`, built under ShapesOnly."""
    from dubcli.model.dubber import build_model

    with ShapesOnly():
        model = build_model(config, stage)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
