"""Data: corpora, manifests, datasets and the SynthDub generator (DESIGN 4 and 6).

SynthDub speech (synth.py is the entry point; other modules here serve manifests and training):
  synth.py      UtteranceSpec / SynthUtterance, make_specs, synthesize, check_synth_dependencies
  voices.py     voices, speaker ids (voice + WORLD perturbation) and the fixed train/test split
  prosody.py    ProsodyStyle: pitch level/range, rate, energy (recorded per utterance)
  sentences.py  GRID grammar, free word sequences, text -> split hashing
  wordlist.py   the shipped frequency word list (wordlist.txt) and how it was built
  phonesets.py  mbrola / festival phone sets -> our ARPAbet vocabulary, CMUdict stress
  mbrola.py     espeak-ng .pho editing + mbrola rendering
  festival.py   festival voices with segment timings
  perturb.py    WORLD vocal-tract-length / F0 perturbation
  timeline.py   PhoneSpan / WordTiming, sample-exact timelines
  engines.py    what the engines share (program runs, edges, loudness)
"""
