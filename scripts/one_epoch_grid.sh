#!/usr/bin/env bash
# One epoch of the Fashion-MNIST MLP (784-1000-1000-10, ReLU, float) per optimizer over a small
# learning-rate grid; prints the training loss at the end of the epoch (a full pass in eval mode)
# so K-FAC-F/K-FAC-G can be compared with SGD at their best grid points.
#   scripts/one_epoch_grid.sh [BUILD_DIR] [OUT_DIR]
set -euo pipefail
build=${1:-build}
out=${2:-runs/one-epoch-grid}
wdlab="$build/bin/wdlab"
mkdir -p "$out"
declare -A grid=([sgd]="0.01 0.03 0.1" [kfac-f]="0.003 0.01 0.03" [kfac-g]="0.003 0.01 0.03")
printf '%-8s %-7s %-12s %-10s %-8s\n' optim lr train_loss test_acc seconds | tee -a "$out/summary.txt"
for opt in ${OPTIMIZERS:-sgd kfac-f kfac-g}; do
  for lr in ${grid[$opt]}; do
    run="$out/$opt-lr$lr"
    rm -rf "$run"
    start=$(date +%s)
    "$wdlab" train --config configs/laptop/mlp-$opt-none.json --set epochs=1 --set lr=$lr \
      --quiet --out "$run" > /dev/null
    secs=$(( $(date +%s) - start ))
    loss=$("$wdlab" eval --checkpoint "$run/checkpoints/epoch-0001.safetensors" --split train --format json |
           /usr/bin/python3 -c 'import json,sys; print("%.5f" % json.load(sys.stdin)["loss"])')
    acc=$(/usr/bin/python3 -c 'import json,sys; print("%.4f" % json.load(open(sys.argv[1]))["test_acc"])' "$run/DONE")
    printf '%-8s %-7s %-12s %-10s %-8s\n' "$opt" "$lr" "$loss" "$acc" "$secs" | tee -a "$out/summary.txt"
  done
done
