#!/usr/bin/env bash
# System packages dubcli needs beyond PyPI (Debian/Ubuntu; run as root or with sudo):
#   - espeak-ng + mbrola voices + festival voices: SynthDub speech generation and the `baseline` engine
#   - ffmpeg: optional (imageio-ffmpeg ships a static ffmpeg), but the system one brings ffprobe
# The mbrola voices live in Debian's contrib/non-free sections, which this script enables.
set -euo pipefail

if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: apt-get not found; install espeak-ng, mbrola (the voices listed below) and festival by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Enable contrib and non-free on Debian's deb822 sources (bookworm and later), idempotently.
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  $SUDO sed -i -E '/^Components:/ { /contrib/! s/$/ contrib/; /non-free( |$)/! s/$/ non-free/ }' \
    /etc/apt/sources.list.d/debian.sources
elif [ -f /etc/apt/sources.list ] && grep -q '^deb .*debian' /etc/apt/sources.list; then
  $SUDO sed -i -E '/^deb .*debian/ { /contrib/! s/$/ contrib/; / non-free( |$)/! s/$/ non-free/ }' \
    /etc/apt/sources.list
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 \
  mbrola-de1 mbrola-de2 mbrola-de3 mbrola-de4 mbrola-de5 mbrola-de6 mbrola-fr1 mbrola-fr4 \
  mbrola-hu1 mbrola-pl1 mbrola-sw1 mbrola-sw2 mbrola-nl2 mbrola-af1 mbrola-ro1 \
  festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-rablpc16k >/dev/null
echo "system-deps: ok ($(espeak-ng --version | head -c 40); mbrola voices: $(ls /usr/share/mbrola | tr '\n' ' '))"
