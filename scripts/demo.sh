#!/usr/bin/env bash
# The README's main command: set up, train a small class-conditional StyleGAN2 on the built-in MNIST
# digits on the CPU for a few minutes, then write a sample grid (one row per digit), a style-mixing
# grid, a truncation sweep, the training's progress grid and curves into the run directory, and say
# how many of the ten digits the network draws. Training stops at DEMO_KIMG (60) or after
# DEMO_MINUTES (7) minutes, whichever comes first (README: what it reaches where).
#
# Knobs (environment): DEMO_OUTDIR (default runs), DEMO_KIMG (training length, default 60: the recipe
# draws all ten digits from ~24-32 kimg on, see docs/training.md), DEMO_MINUTES (training time cap,
# default 7: the script's work outside training took 18 s on the README's machine, so ~45 s on one
# 2.5x slower, and the whole script still ends within 8 minutes; whichever ends first), DEMO_SEED (default 0), DEMO_DEVICE (default cpu), DEMO_PROCS
# (training processes, default 2 on a machine with >= 2 cores: gloo data parallel, one thread each),
# DEMO_THREADS (threads per process, default 1: on a busy machine intra-op threads wait for each
# other at every barrier).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
OUTDIR=${DEMO_OUTDIR:-runs}
MINUTES=${DEMO_MINUTES:-7}
KIMG=${DEMO_KIMG:-60}
DEVICE=${DEMO_DEVICE:-cpu}
CORES=$(nproc 2>/dev/null || echo 1)
PROCS=${DEMO_PROCS:-$([ "$DEVICE" = cpu ] && [ "$CORES" -ge 2 ] && echo 2 || echo 1)}
start=$(date +%s)

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --cond: the `cpu` preset with labels is conditional with an auxiliary classifier in D (AC-GAN),
# which keeps StyleGAN2 out of its early one-digit collapse (docs/presets.md).
"$PY" -m stylegan train --outdir "$OUTDIR" --data builtin:mnist --cfg cpu --cond --kimg "$KIMG" \
    --max-minutes "$MINUTES" --aug noaug --seed "${DEMO_SEED:-0}" --device "$DEVICE" --gpus "$PROCS" \
    --threads "${DEMO_THREADS:-1}" --desc mnist-cpu-demo | tee "$log"
run=$(sed -n 's/^run directory: //p' "$log" | tail -n 1)
snap=$(sed -n 's/^last snapshot: //p' "$log" | tail -n 1)
if [ -z "$run" ] || [ -z "$snap" ]; then
  echo "demo: training did not report its run directory / snapshot" >&2
  exit 1
fi

fig=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$fig"' EXIT
# Samples (one row per digit 0-9, seeds 0-7), style mixing (each cell: the coarse 4x4-8x8 styles,
# which carry the digit's identity, of its column's top digit; the finer ones, stroke and
# thickness, of its row's left digit), truncation sweep (psi 1 .. -1; psi 0 is the average digit).
"$PY" -m stylegan generate --network "$snap" --seeds 0-7 --class 0-9 --grid --outdir "$fig/samples" \
    --device "$DEVICE" >/dev/null
cp "$fig/samples/grid.png" "$run/samples.png"
"$PY" -m stylegan mix --network "$snap" --rows 1,2,3,4,5 --row-classes 0,2,4,6,8 --cols 10,11,12,13,14 \
    --col-classes 1,3,5,7,9 --styles coarse --outdir "$fig/mix" --device "$DEVICE" >/dev/null
cp "$fig/mix/grid.png" "$run/style-mixing.png"
"$PY" -m stylegan figures --network "$snap" --kind truncation --seeds 0-7 --class 3 --psi 1,0.7,0.5,0,-0.5,-1 \
    --outdir "$fig/trunc" --device "$DEVICE" >/dev/null
cp "$fig/trunc/truncation.png" "$run/truncation.png"
# progress.png (G_ema of every snapshot on the same latents) and curves.png (losses, penalties,
# digit coverage over kimg); the last line says how many of the ten digits the network draws.
report=$("$PY" -m stylegan report "$run" --device "$DEVICE")
echo "$report" | grep -v '^wrote '

end=$(date +%s)
echo
echo "demo done in $(( (end - start) / 60 ))m $(( (end - start) % 60 ))s."
echo "$report" | sed -n 's/^final snapshot \([0-9.]*\) kimg: /at \1 kimg the network /p'
echo "Look at:"
echo "  $run/samples.png         one row per digit 0-9 (G_ema, seeds 0-7)"
echo "  $run/progress.png        the same 8 latents at every snapshot, one row each"
echo "  $run/curves.png          losses, R1 / path-length penalties and digit coverage over kimg"
echo "  $run/style-mixing.png    cells take their coarse styles (4x4-8x8: which digit) from the top row"
echo "  $run/truncation.png      a \"3\" at psi = 1, 0.7, 0.5, 0 (average of all digits), -0.5, -1"
echo "  $run/fakes*.png, reals.png, stats.jsonl, log.txt, $snap"
