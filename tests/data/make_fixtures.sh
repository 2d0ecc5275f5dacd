#!/bin/sh
# Regenerate the speech fixtures used by tests/audio/test_detect.py (needs espeak-ng and sox).
#
# Each utterance is synthesised by espeak-ng (22050 Hz), then converted by sox to a telephone
# rate as 16-bit mono little-endian WAV, without dither so the output is reproducible.
# Two voices, each at 8 kHz and 16 kHz; about 230 KB in all.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

utter() {  # utter NAME VOICE TEXT
    espeak-ng -v "$2" -s 160 -w "$tmp/$1.wav" "$3"
    for rate in 8000 16000; do
        sox -D "$tmp/$1.wav" -b 16 -e signed-integer -c 1 "speech_$1_$((rate / 1000))k.wav" rate -h "$rate"
    done
}

utter male en-us "Thank you for calling, how can I help?"
utter female en+f3 "Please hold while I check that order."
