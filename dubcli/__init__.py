"""dubcli: video dubbing with DiFlowDubber (discrete flow matching over factorized speech tokens)."""

__version__ = "0.1.0"
