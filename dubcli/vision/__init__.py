"""Visual frontend: face landmarks (landmarks.py), their topology (topology.py) and the lip/face
features the model reads (features.py). Nothing heavy is imported here."""
