#!/usr/bin/env bash
# The README's main command: set up, train a small StyleGAN2 on the built-in MNIST digits on the CPU
# for a few minutes, then write a sample grid, a style-mixing grid and a truncation sweep into the
# run directory. About 6-8 minutes on 2 CPU cores.
#
# Knobs (environment): DEMO_OUTDIR (default runs), DEMO_MINUTES (training time cap, default 5),
# DEMO_KIMG (training length in kimg, default 60; whichever of the two comes first ends training),
# DEMO_DEVICE (default cpu), DEMO_THREADS (CPU threads, default 1: on a shared or busy 2-core machine
# two intra-op threads can be many times slower than one).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
OUTDIR=${DEMO_OUTDIR:-runs}
MINUTES=${DEMO_MINUTES:-5}
KIMG=${DEMO_KIMG:-60}
DEVICE=${DEMO_DEVICE:-cpu}
start=$(date +%s)

log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$PY" -m stylegan train --outdir "$OUTDIR" --data builtin:mnist --cfg cpu --kimg "$KIMG" \
    --max-minutes "$MINUTES" --aug noaug --device "$DEVICE" --threads "${DEMO_THREADS:-1}" --desc mnist-cpu-demo | tee "$log"
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
