"""SynthDub: the generator of speech with exact phone timelines and synthetic talking faces
(DESIGN 6). It depends only on the io and base layers, so inference can drive a synthetic face
for text-only timing (inference.py) and prepare's `synth` layout can build a corpus from it.

Speech (speech.py is the entry point):
  speech.py      UtteranceSpec / SynthUtterance, make_specs, synthesize, check_synth_dependencies
  voices.py      voices, speaker ids (voice + WORLD perturbation) and the fixed train/test split
  prosody.py     ProsodyStyle: pitch level/range, rate, energy (recorded per utterance)
  sentences.py   GRID grammar, free word sequences, text -> split hashing
  wordlist.py    the shipped frequency word list (wordlist.txt) and how it was built
  phonesets.py   mbrola / festival phone sets -> our ARPAbet vocabulary, CMUdict stress
  mbrola.py      espeak-ng .pho editing + mbrola rendering
  festival.py    festival voices with segment timings
  perturb.py     WORLD vocal-tract-length / F0 perturbation
  timeline.py    PhoneSpan / WordTiming, sample-exact timelines
  engines.py     what the speech synthesizers share (program runs, edges, loudness)
Faces:
  face_motion.py 478-point landmark trajectories driven by a phone timeline and prosody
  render.py      a real face photo warped by those trajectories (videos for tests and examples)
"""
