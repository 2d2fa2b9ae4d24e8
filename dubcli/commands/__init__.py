"""CLI commands, one module each; every module has `register(app)` and keeps heavy imports inside
the command function so `dubcli --help` stays fast. cli.py registers the modules listed here."""

from __future__ import annotations

COMMAND_MODULES: list[str] = ["dub", "eval", "prepare", "train"]


def register_all(app) -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"dubcli.commands.{name}").register(app)
