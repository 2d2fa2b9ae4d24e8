#!/usr/bin/env bash
# Rebuild the bundled default model on a CPU (README "The default model"). Every step resumes
# where it stopped: run this script again after an interruption at any point.
#
#   bash recipes/default-cpu.sh [WORKDIR]        # WORKDIR defaults to ./runs/default
#
# Times on a 2-core CPU are in the README. Override the sizes with environment variables:
# N (utterances), STEPS1 / STEPS2 (optimizer steps of stage 1 / 2), DEVICE (cpu | cuda), CONFIG
# (the recipe; recipes/small-cpu.toml rebuilds the previous default, DiT 256 x 5).
set -euo pipefail
WORK="${1:-runs/default}"
N="${N:-5200}"
STEPS1="${STEPS1:-450}"
STEPS2="${STEPS2:-350}"
DEVICE="${DEVICE:-cpu}"
CONFIG="${CONFIG:-$(dirname "$0")/default-cpu.toml}"
mkdir -p "$WORK"

# 1. SynthDub: N utterances (80/10/10 train/valid/test), 23 base voices, 5 of them test-only.
dubcli prepare --layout synth -n "$N" --seed 12 -o "$WORK/corpus" -j 2 --codec-items 400

# 2. Stage 1 (zero-shot TTS) and 3. stage 2 (video), each resumed when its run folder exists.
train() {  # train RUN STAGE STEPS [extra args]
  local run="$1" stage="$2" steps="$3"
  shift 3
  local again=()
  if [ -e "$run/last.safetensors" ]; then again=(--resume); fi
  dubcli train --stage "$stage" --data "$WORK/corpus" -o "$run" --config "$CONFIG" \
    --steps "$steps" --device "$DEVICE" "${again[@]}" "$@"
}
train "$WORK/tts" tts "$STEPS1"
train "$WORK/dub" dub "$STEPS2" --init-from "$WORK/tts"

# 4. The inference checkpoint (fp16) and its evaluation on the unseen-voice test split.
dubcli train --stage dub --data "$WORK/corpus" -o "$WORK/dub" --config "$CONFIG" \
  --steps "$STEPS2" --device "$DEVICE" --resume --export "$WORK/model.safetensors"
dubcli eval --checkpoint "$WORK/model.safetensors" --split "$WORK/corpus/test" --setting 2 \
  --nfe 8 --compare --oracles --limit 60 -o "$WORK/eval"
