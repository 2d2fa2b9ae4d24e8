"""Alignment: monotonic alignment search (mas.py) and pocketsphinx forced alignment (forced.py).

Nothing is imported here: `from dubcli.align.mas import ...` / `from dubcli.align.forced import ...`
(forced.py loads pocketsphinx only when it aligns).
"""
