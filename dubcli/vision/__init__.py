"""Visual frontend, extraction only: face landmarks (landmarks.py), their topology (topology.py)
and the lip/face features the model reads (features.py). Nothing heavy is imported here.
Synthetic faces (motion and rendering) are the SynthDub generator's: dubcli/synth/."""
