"""Evaluation metrics (paper 4.2; DESIGN 2 table, "eval" rows). One metric per module:

- sync.py     landmark lip-sync summaries (the metric: dubcli.engines.sync) and phone-boundary error
- syncnet.py  LSE-C / LSE-D with SyncNet weights (syncnet_python protocol), when weights exist
- wer.py      corpus WER + offline recognizers (pocketsphinx grammar, cached Whisper)
- secs.py     speaker similarity (resemblyzer d-vectors)
- mos.py      DNSMOS naturalness (speechmos ONNX models)
- rtf.py      real-time factor timing

The run around them: runner.py (`evaluate`, read from a frozen EvalConfig, config.py), splits.py
(pairs and Settings), groundtruth.py, scoring.py, systems.py, report.py and plots.py.

Nothing is imported here: the CLI imports this package at startup, and the metrics pull heavy
dependencies (torch, onnxruntime, resemblyzer) only when called.
"""
