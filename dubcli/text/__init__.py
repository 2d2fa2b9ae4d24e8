"""Text frontend: subtitle cues, normalization for speech, G2P and the phoneme vocabulary."""
