"""The prepare pipeline: raw data -> the prepared-dataset format of dubcli/data/ (DESIGN 7).

run.py       `prepare(...)`: items -> workers -> codec -> shards + manifest (the command's call)
config.py    PrepareConfig: how a prepare runs, frozen, built once by the command
workers.py   extract one item (a layout) and encode it (the codec), in or out of process
merge.py     combine the folders of `prepare --shard i/n` runs into one dataset
layouts/     how DATA is read: synth (SynthDub, generated), pairs, grid, chem
"""
