"""Audio: file I/O and resampling (io.py); speech codecs live in codec/ (DESIGN 4, 7)."""
