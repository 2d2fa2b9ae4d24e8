"""DiFlowDubber networks and training objectives (papers/diflowdubber.txt, DESIGN section 5).

One concept per file; nothing is imported here so that `import dubcli.model` stays cheap:

- masks.py      key padding masks (True = valid), masked fills and masked statistics
- attention.py  RoPE, multi-head self-attention (SDPA), cross-attention returning its maps
- fft.py        FastSpeech Feed-Forward Transformer blocks and stack (B.2.1)
- convnext.py   ConvNeXt V2 1D blocks with Global Response Normalization (B.2.2)
- upsample.py   learnable interpolation-convolution upsampler, e.g. 25 fps -> 80 tokens/s (B.2.2)
- dit.py        DiT block with adaLN-zero, DiT stack with long skip, time embedding (B.2.1)
- dfm.py        discrete flow matching: masked mixture path, CE loss (eq. 1), Euler sampler
- loading.py    `load_model(spec, device)`: every way to name a model, verified and rebuilt

Dimension legend used by every tensor file here: b batch, n speech tokens, nt phonemes,
nv video frames, d width, q codebook streams, h heads, hd head width, V vocabulary size.
Masks are boolean with True marking a valid (real, non-padding) position.
"""
