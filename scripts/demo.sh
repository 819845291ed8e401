#!/usr/bin/env bash
# The README's main command: set up, train a small StyleGAN2 on the built-in MNIST digits on the CPU
# for a few minutes, then write a sample grid, a style-mixing grid and a truncation sweep into the
# run directory, in at most 8 minutes: training stops at the first tick after DEMO_MINUTES (6.5)
# minutes or at DEMO_KIMG (120), whichever comes first (README: what it reaches where).
#
# Knobs (environment): DEMO_OUTDIR (default runs), DEMO_KIMG (training length, default 120: at this
# network size StyleGAN2 draws one digit for every z from ~5 kimg and only spreads over all ten
# after ~80-100 kimg, see docs/training.md), DEMO_MINUTES (training time cap, default 6.5; whichever
# ends first), DEMO_DEVICE (default cpu), DEMO_PROCS (training processes, default 2 on a machine
# with >= 2 cores: gloo data parallel, one thread each), DEMO_THREADS (threads per process, default 1:
# on a busy machine intra-op threads wait for each other at every barrier).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
OUTDIR=${DEMO_OUTDIR:-runs}
MINUTES=${DEMO_MINUTES:-6.5}
KIMG=${DEMO_KIMG:-120}
DEVICE=${DEMO_DEVICE:-cpu}
CORES=$(nproc 2>/dev/null || echo 1)
PROCS=${DEMO_PROCS:-$([ "$DEVICE" = cpu ] && [ "$CORES" -ge 2 ] && echo 2 || echo 1)}
start=$(date +%s)

log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$PY" -m stylegan train --outdir "$OUTDIR" --data builtin:mnist --cfg cpu --kimg "$KIMG" \
    --max-minutes "$MINUTES" --aug noaug --device "$DEVICE" --gpus "$PROCS" --threads "${DEMO_THREADS:-1}" \
    --desc mnist-cpu-demo | tee "$log"
run=$(sed -n 's/^run directory: //p' "$log" | tail -n 1)
snap=$(sed -n 's/^last snapshot: //p' "$log" | tail -n 1)
if [ -z "$run" ] || [ -z "$snap" ]; then
  echo "demo: training did not report its run directory / snapshot" >&2
  exit 1
fi

fig=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$fig"' EXIT
# Sample grid (8x8, no truncation), style mixing (coarse = 4x4-8x8 styles from the column seeds),
# truncation sweep (psi 1 .. -1; psi 0 is the average digit).
"$PY" -m stylegan generate --network "$snap" --seeds 0-63 --grid --outdir "$fig/samples" --device "$DEVICE" >/dev/null
cp "$fig/samples/grid.png" "$run/samples.png"
"$PY" -m stylegan mix --network "$snap" --rows 1,2,3,4,5,6 --cols 10,11,12,13,14,15 --styles coarse \
    --outdir "$fig/mix" --device "$DEVICE" >/dev/null
cp "$fig/mix/grid.png" "$run/style-mixing.png"
"$PY" -m stylegan figures --network "$snap" --kind truncation --seeds 0-7 --psi 1,0.7,0.5,0,-0.5,-1 \
    --outdir "$fig/trunc" --device "$DEVICE" >/dev/null
cp "$fig/trunc/truncation.png" "$run/truncation.png"

end=$(date +%s)
echo
echo "demo done in $(( (end - start) / 60 ))m $(( (end - start) % 60 ))s. Look at:"
echo "  $run/samples.png         64 generated digits (G_ema, seeds 0-63)"
echo "  $run/style-mixing.png    rows take their coarse styles (4x4-8x8) from the top-row digits"
echo "  $run/truncation.png      psi = 1, 0.7, 0.5, 0 (average digit), -0.5, -1"
echo "  $run/fakes*.png, reals.png, stats.jsonl, log.txt, $snap"
