#!/usr/bin/env bash
# scripts/gpu-check.sh on the CPU, in seconds: syntax (bash -n, shellcheck where installed), the
# --dry-run plan and its budget (the stage limits are summed here from the printed plan, not
# taken from the script's own total), the refusal of a plan over the budget, and two end-to-end
# runs with --fake-device (every device stage a stub that prints two lines, then passes, fails
# or hangs as WDLAB_GPU_CHECK_FAKE tells it):
#   - a hung stage killed by its (1 s) limit and a failed stage: $OUT holds summary.txt and
#     logs.tgz only (the GPU tool returns at most 8 files); both stages' partial lines are in
#     logs.tgz and their last lines in summary.txt;
#   - an `nvidia` package that does not import: the nvidia/*/lib folders found by the find
#     fallback reach the wdlab and ctest calls' LD_LIBRARY_PATH, and python gets none;
#   - the whole script stopped by SIGTERM while a stage hangs: the trap still packs logs.tgz with
#     that stage's partial output and puts its last lines into summary.txt.
# Usage: check_gpu_check.sh [path/to/gpu-check.sh]   (default: the one beside this checkout)
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script=${1:-$here/../../scripts/gpu-check.sh}
[[ -f "$script" ]] || { echo "check_gpu_check: no script at $script" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/check-gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0
check() {  # DESCRIPTION COMMAND...: one PASS/FAIL line
  if "${@:2}"; then echo "PASS: $1"; else echo "FAIL: $1"; failures=$((failures + 1)); fi
}
max_out_files=8

# At most 8 plain files in DIR, summary.txt and logs.tgz among them.
out_ok() {
  local dir=$1 n
  n=$(find "$dir" -type f | wc -l)
  ((n <= max_out_files)) && [[ -f "$dir/summary.txt" && -f "$dir/logs.tgz" ]]
}
# Negative control: the file-count check refuses 9 files.
mkdir -p "$work/nine"
for i in 1 2 3 4 5 6 7; do : >"$work/nine/f$i"; done
: >"$work/nine/summary.txt"; : >"$work/nine/logs.tgz"
not() { ! "$@"; }
check "negative control: the file-count check refuses 9 files in \$OUT" not out_ok "$work/nine"

# --- syntax -----------------------------------------------------------------------------------
check "bash -n" bash -n "$script"
if command -v shellcheck >/dev/null 2>&1; then check "shellcheck" shellcheck "$script"; fi

# --- the plan and its budget ------------------------------------------------------------------
plan=$(OUT="$work/dry" bash "$script" --dry-run --build-dir build-gpu 2>&1); rc=$?
check "dry run exits 0" test "$rc" -eq 0
check "dry run plans the layer crosscheck" grep -q 'crosscheck --a reference-double --b cuda --layers' <<<"$plan"
# Sum the per-stage limits of the printed plan line ("plan: device 10s, binary 20s, ...").
stage_line=$(grep -m1 '^plan: device ' <<<"$plan")
sum=0
for lim in $(grep -oE ' [0-9]+s(,|$)' <<<"$stage_line" | tr -dc '0-9\n'); do sum=$((sum + lim)); done
stages=$(grep -oE ' [0-9]+s(,|$)' <<<"$stage_line" | wc -l)
printed=$(sed -n 's/^plan: stage limits total \([0-9]*\) s <= budget.*/\1/p' <<<"$plan")
echo "plan: $stages stages, limits summed here ${sum} s, printed total ${printed:-none} s"
check "the plan lists its stages (>= 10)" test "$stages" -ge 10
check "the printed total equals the sum of the stage limits" test "${printed:-x}" = "$sum"
check "the stage limits add up to <= 420 s" test "$sum" -le 420
refuse=$(WDLAB_GPU_CHECK_BUDGET_S=$((sum - 1)) OUT="$work/refuse" bash "$script" --fake-device 2>&1); rc=$?
check "a budget below the plan ($((sum - 1)) s) is refused with exit 2" test "$rc" -eq 2
check "the refusal names the planned total" grep -q "add up to ${sum} s" <<<"$refuse"
check "a refused run writes nothing to \$OUT" test ! -e "$work/refuse/summary.txt"

# --- fake device: a hung stage (killed by its limit) and a failed one ---------------------------
out="$work/fake"
WDLAB_GPU_CHECK_FAKE="crosscheck:vgg16-bn-sgd=hang gpu-tests=fail bench-resnet32x4-bn-640=hang" \
  WDLAB_GPU_CHECK_FAKE_LIMIT_S=1 OUT="$out" bash "$script" --fake-device >"$work/fake.stdout" 2>&1; rc=$?
check "fake run with a failing stage exits 1" test "$rc" -eq 1
check "\$OUT holds <= $max_out_files files, summary.txt and logs.tgz among them" out_ok "$out"
check "\$OUT holds exactly summary.txt and logs.tgz" test "$(cd "$out" && find . -type f | sort | tr '\n' ' ')" = "./logs.tgz ./summary.txt "
mkdir -p "$work/unpacked"
tar -xzf "$out/logs.tgz" -C "$work/unpacked"
check "logs.tgz keeps the hung crosscheck's partial output" grep -q 'fake crosscheck:vgg16-bn-sgd: partial result 2' "$work/unpacked/crosscheck-vgg16-bn-sgd.log"
check "logs.tgz keeps the hung bench's partial output" grep -q 'fake bench-resnet32x4-bn-640: partial result 2' "$work/unpacked/bench-resnet32x4-bn-640.json"
check "logs.tgz holds every crosscheck process's log (10)" test "$(find "$work/unpacked" -name 'crosscheck-*.log' | wc -l)" -eq 10
check "summary: the hung stage timed out (exit 124)" grep -q '^crosscheck:vgg16-bn-sgd: exit 124' "$out/summary.txt"
check "summary: the hung stage's last lines" grep -q '| fake crosscheck:vgg16-bn-sgd: partial result 2' "$out/summary.txt"
check "summary: the failed stage's last lines" grep -q '| fake gpu-tests: failing' "$out/summary.txt"
check "summary: a passing stage's log is not copied in" not grep -q '| fake crosscheck:layers' "$out/summary.txt"
check "summary: the plan total is printed" grep -q "^plan: stage limits total ${sum} s <= budget 420 s" "$out/summary.txt"
check "summary: the run ends with a verdict" grep -q '^verdict: FAIL' "$out/summary.txt"

# --- run-time libraries: PyTorch's nvidia/*/lib for wdlab and the tests, never for python ------
# A site-packages folder whose `nvidia` package fails to import: the script falls back to a find.
sp="$work/site-packages"
mkdir -p "$sp/nvidia/cublas/lib" "$sp/nvidia/cudnn/lib"
echo 'raise ImportError("not importable on purpose")' >"$sp/nvidia/__init__.py"
out="$work/libs"
env -u LD_LIBRARY_PATH PYTHONPATH="$sp" WDLAB_GPU_CHECK_FAKE_LIMIT_S=1 OUT="$out" \
  bash "$script" --fake-device >"$work/libs.stdout" 2>&1
mkdir -p "$work/unpacked-libs"
tar -xzf "$out/logs.tgz" -C "$work/unpacked-libs"
check "libraries: found by the find fallback when import nvidia fails" grep -q '^libraries: nvidia wheels (find): .*nvidia/cublas/lib' "$out/summary.txt"
check "libraries: wdlab crosscheck gets nvidia/*/lib on LD_LIBRARY_PATH" grep -q "LD_LIBRARY_PATH=.*$sp/nvidia/cudnn/lib" "$work/unpacked-libs/crosscheck-layers.log"
check "libraries: the GPU tests get nvidia/*/lib on LD_LIBRARY_PATH" grep -q "LD_LIBRARY_PATH=.*$sp/nvidia/cublas/lib" "$work/unpacked-libs/ctest-gpu.log"
check "libraries: python (bench_pytorch) gets no LD_LIBRARY_PATH" grep -q 'LD_LIBRARY_PATH=unset' "$work/unpacked-libs/bench-pytorch-vgg16-bn.json"

# --- the whole script stopped (SIGTERM) while a stage hangs: the trap packs --------------------
out="$work/term"
WDLAB_GPU_CHECK_FAKE="gpu-tests=hang" WDLAB_GPU_CHECK_FAKE_LIMIT_S=60 OUT="$out" \
  bash "$script" --fake-device >"$work/term.stdout" 2>&1 &
pid=$!
# The binary stage's lines reach stdout just before the hanging gpu-tests stage starts.
for _ in $(seq 100); do grep -q 'fake binary: partial result 2' "$work/term.stdout" && break; sleep 0.1; done
sleep 0.5
kill -TERM "$pid"
wait "$pid"; rc=$?
check "a script stopped by SIGTERM exits 143" test "$rc" -eq 143
check "after SIGTERM \$OUT holds summary.txt and logs.tgz (<= $max_out_files files)" out_ok "$out"
mkdir -p "$work/unpacked-term"
tar -xzf "$out/logs.tgz" -C "$work/unpacked-term" 2>/dev/null
check "after SIGTERM logs.tgz keeps the running stage's partial output" grep -q 'fake gpu-tests: partial result 2' "$work/unpacked-term/ctest-gpu.log"
check "after SIGTERM the summary names the interrupted stage" grep -q '^interrupted: gpu-tests was still running' "$out/summary.txt"
check "after SIGTERM the summary holds its last lines" grep -q '| fake gpu-tests: partial result 2' "$out/summary.txt"
check "after SIGTERM no stub is left running" not pgrep -f 'fake_stu[b] gpu-tests'

echo "check_gpu_check: $failures failed"
((failures == 0))
