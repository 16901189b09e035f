#!/usr/bin/env bash
# wdlab GPU acceptance check (shared/GPU.md §6): one short run on a GPU machine does all of it.
#   1. prints the device (nvidia-smi) and the CUDA libraries found,
#   2. builds with -DCMAKE_CUDA_ARCHITECTURES=90, or uses a build carried from a development
#      machine (--build-dir; the GPU machine has no -dev packages, so this is the usual way),
#   3. checks that the binary starts (wdlab --version, wdlab info: the GPU it sees),
#   4. runs the GPU tests (ctest -L gpu); on a machine with a GPU a skipped test is a failure,
#   5. wdlab crosscheck --b cuda: every layer kind alone (and bit for bit in --exact mode), then one step of VGG16 and ResNet32x4
#      (with BN) with SGD, Adam, K-FAC-F and K-FAC-G against the double reference,
#   6. wdlab bench --backend cuda and scripts/bench_pytorch.py on the same GPU (same models,
#      batches 128/640/2000, FP32 with TF32 pinned off in both, CUDA events, medians of >= 20
#      steps; 100 steps at batch 128 so the K-FAC mean includes one T_inv = 100 inversion),
#   7. writes ${OUT:-./gpu-check-out}/summary.txt: every stage, the ratios ours/PyTorch, the
#      fraction of FP32 peak (67 TFLOP/s, H200) and the issue's targets as PASS/FAIL lines.
# Every stage runs under `timeout` with its own limit (and never past the budget); the script
# goes on past a failed stage and summarizes. Budget WDLAB_GPU_CHECK_BUDGET_S (default 470 s).
#
# Usage: scripts/gpu-check.sh [--build-dir DIR] [--jobs N] [--dry-run]
#        scripts/gpu-check.sh --prepare [DIR]     (on the development machine, see below)
# Exit: 0 all checks passed on a GPU; 1 a check failed, was skipped on a GPU, or ran out of
#       time; 2 bad usage; 3 no GPU here: built and ran, but nothing was verified on a device.
#
# The carried build. The GPU machine has nvcc, CMake, ninja and PyTorch (whose nvidia-* wheels
# hold cuBLAS and cuDNN) but no Eigen, Boost, fmt or doctest headers. So build on the
# development machine (Debian 12 + CUDA toolkit), and carry the build directory over:
#     scripts/gpu-check.sh --prepare build-gpu
# configures build-gpu (Release, WDLAB_CUDA=ON, CMAKE_CUDA_ARCHITECTURES=90, cudart static as
# cuda/CMakeLists.txt sets it), builds wdlab and the test executables, strips them, and copies
# the shared libraries the GPU machine lacks (libfmt, libboost_program_options, libz: whatever
# ldd resolves outside glibc/libstdc++ and the CUDA libraries) into build-gpu/carried-lib, and
# deletes object files and static libraries so the directory fits the 64 MiB carry. The carried
# build's reference engine is pure Eigen (WDLAB_BLAS=OFF): Debian's OpenBLAS is 36 MB, which with
# the build would not fit the carry, and the GPU machine has no copy of its own.
# Then, on the GPU machine, from the source tree (same path or not: ctest files are relocated):
#     scripts/gpu-check.sh --build-dir build-gpu
# which puts build-gpu/carried-lib and the nvidia/*/lib folders of PyTorch's site-packages on
# LD_LIBRARY_PATH. Without --build-dir it configures and builds here (needs the headers).
set -uo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=""
jobs=$(nproc 2>/dev/null || echo 4)
dry_run=no
prepare=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir=${2:?--build-dir needs a directory}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --dry-run) dry_run=yes; shift ;;
    --prepare) prepare=${2:-build-gpu}; [[ $# -ge 2 ]] && shift; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu-check: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

# --- the carried build (development machine) -------------------------------------------------
if [[ -n "$prepare" ]]; then
  set -e
  dir=$(mkdir -p "$prepare" && cd "$prepare" && pwd)
  cmake -S "$src_dir" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DWDLAB_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DWDLAB_NATIVE=OFF -DWDLAB_BLAS=OFF
  grep -q '^WDLAB_HAVE_CUDA' "$dir/CMakeCache.txt" 2>/dev/null || true
  cmake --build "$dir" -j "$jobs"
  mkdir -p "$dir/carried-lib"
  # Shared libraries resolved outside the base system and the CUDA libraries (those come from
  # PyTorch's wheels on the GPU machine; cuSOLVER, for K-FAC, brings cuSPARSE and nvJitLink).
  for bin in "$dir"/bin/*; do
    [[ -x "$bin" && -f "$bin" ]] || continue
    ldd "$bin" 2>/dev/null | awk '/=> \// { print $3 }'
  done | sort -u | grep -Ev '/(libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so' \
       | grep -Ev '/(libcudart|libcublas|libcublasLt|libcudnn[^/]*|libcusolver|libcusparse|libnvJitLink|libcurand|libnvrtc[^/]*|libcuda)\.so' \
       | while read -r lib; do cp -L "$lib" "$dir/carried-lib/"; done
  strip --strip-unneeded "$dir"/bin/* 2>/dev/null || true
  # Object files and static libraries are not needed to run: without them the directory fits the
  # device tool's 64 MiB carry (81 MB -> ~47 MB at ae99447). A later --prepare rebuilds them.
  find "$dir" \( -name '*.o' -o -name '*.a' \) -delete
  echo "gpu-check: carried build ready in $dir ($(du -sh "$dir" | cut -f1)); carried libraries:"
  ls "$dir/carried-lib"
  exit 0
fi

out_dir=${OUT:-./gpu-check-out}
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
summary="$out_dir/summary.txt"
[[ $dry_run == yes ]] || : >"$summary"

budget_s=${WDLAB_GPU_CHECK_BUDGET_S:-470}
start_s=$(date +%s)
left_s() { local left=$((budget_s - ($(date +%s) - start_s))); echo $((left > 0 ? left : 1)); }
# A stage's limit: its own, never past what is left of the budget.
limit() { local own=$1 left; left=$(left_s); echo $((own < left ? own : left)); }

say() { if [[ $dry_run == yes ]]; then echo "$*"; else echo "$*" | tee -a "$summary"; fi; }
verdict=PASS
fail() { say "FAIL: $*"; verdict=FAIL; }

# run_stage NAME OWN_LIMIT_S LOG -- COMMAND...: runs COMMAND under timeout, output to LOG;
# returns its exit status (124: timed out). --dry-run prints the plan instead.
run_stage() {
  local name=$1 own=$2 log=$3
  shift 4
  if [[ $dry_run == yes ]]; then
    echo "[plan] $name (timeout ${own}s, log $log): $*"
    return 0
  fi
  local t0 rc
  t0=$(date +%s)
  if [[ $log == *.json ]]; then  # JSON on stdout; stderr beside it, so the JSON stays parseable
    timeout "$(limit "$own")" "$@" >"$out_dir/$log" 2>"$out_dir/${log%.json}.stderr.log"
  else
    timeout "$(limit "$own")" "$@" >"$out_dir/$log" 2>&1
  fi
  rc=$?
  say "$name: exit $rc in $(($(date +%s) - t0)) s ($log)"
  [[ $log == *.json && $rc -ne 0 ]] && tail -2 "$out_dir/${log%.json}.stderr.log" | sed 's/^/  /' | tee -a "$summary"
  [[ $rc -eq 124 ]] && say "$name: timed out"
  return $rc
}

say "wdlab gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
say "source: $src_dir ($(git -C "$src_dir" rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
[[ $dry_run == yes ]] && say "dry run: the plan, nothing is executed (budget ${budget_s}s)"

# --- 1. device -------------------------------------------------------------------------------
gpu_present=no
if [[ $dry_run == yes ]]; then
  echo "[plan] device: nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap"
elif command -v nvidia-smi >/dev/null 2>&1; then
  if smi=$(timeout 30 nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap \
             --format=csv,noheader 2>&1); then
    gpu_present=yes
    while IFS= read -r line; do say "device: $line"; done <<<"$smi"
  else
    say "device: nvidia-smi failed: $smi"
  fi
else
  say "device: nvidia-smi not found (no NVIDIA driver on this machine)"
fi

# cuBLAS/cuDNN on the GPU machine come as PyTorch's nvidia-* wheels (shared/GPU.md); put their
# lib folders first so a carried build finds libcublas.so.13 and libcudnn.so.9 there.
if [[ $dry_run == no ]] && command -v python3 >/dev/null 2>&1; then
  wheel_libs=$(timeout 60 python3 - <<'EOF' 2>/dev/null || true
import glob, os
try:
    import nvidia
    for root in nvidia.__path__:
        for lib in sorted(glob.glob(os.path.join(root, "*", "lib"))):
            print(lib)
except ImportError:
    pass
EOF
)
  if [[ -n "$wheel_libs" ]]; then
    LD_LIBRARY_PATH="$(paste -sd: <<<"$wheel_libs")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LD_LIBRARY_PATH
    say "libraries: nvidia wheels: $(tr '\n' ' ' <<<"$wheel_libs")"
  fi
fi

# --- 2. build --------------------------------------------------------------------------------
# A carried build keeps the absolute paths of the machine it was built on in its ctest files;
# point them at where the build and the sources are now. Nothing is rebuilt (that would re-run
# CMake with the other machine's paths).
relocate_build() {
  local dir=$1 old_build old_src
  old_build=$(sed -n 's/^CMAKE_CACHEFILE_DIR:INTERNAL=//p' "$dir/CMakeCache.txt")
  old_src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$dir/CMakeCache.txt")
  [[ -n "$old_build" && -n "$old_src" ]] || { fail "build: $dir/CMakeCache.txt lacks its paths"; return 1; }
  if [[ "$old_build" != "$dir" || "$old_src" != "$src_dir" ]]; then
    say "build: relocating ctest files $old_build -> $dir, sources $old_src -> $src_dir"
    # DartConfiguration.tcl too: ctest runs the tests of its BuildDirectory, not of --test-dir.
    find "$dir" \( -name '*.cmake' -path '*tests*' \) -o -name 'CTestTestfile.cmake' \
      -o -name 'DartConfiguration.tcl' | while read -r f; do
      sed -i -e "s#${old_build}#${dir}#g" -e "s#${old_src}#${src_dir}#g" "$f"
    done
  fi
}

build_mode=""
if [[ $dry_run == yes ]]; then
  if [[ -n "$build_dir" ]]; then
    echo "[plan] build: use the carried build $build_dir (relocate its ctest files; carried-lib on LD_LIBRARY_PATH)"
  else
    echo "[plan] build: cmake -S $src_dir -B $src_dir/build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DWDLAB_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build -j $jobs"
    build_dir="$src_dir/build-gpu"
  fi
elif [[ -n "$build_dir" ]]; then
  build_dir=$(cd "$build_dir" && pwd)
  [[ -f "$build_dir/CMakeCache.txt" ]] || { fail "build: $build_dir is not a CMake build"; build_dir=""; }
  if [[ -n "$build_dir" ]]; then
    build_mode="carried ($build_dir)"
    relocate_build "$build_dir" || build_dir=""
  fi
else
  build_dir="$src_dir/build-gpu"
  build_mode="built here ($build_dir, CMAKE_CUDA_ARCHITECTURES=90)"
  say "build: configuring $build_dir"
  if ! timeout "$(left_s)" cmake -S "$src_dir" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
         -DWDLAB_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 >"$out_dir/configure.log" 2>&1; then
    fail "build: configure failed or timed out (configure.log)"; build_dir=""
  elif ! timeout "$(left_s)" cmake --build "$build_dir" -j "$jobs" >"$out_dir/build.log" 2>&1; then
    fail "build: build failed or timed out (build.log)"; build_dir=""
  fi
fi
if [[ $dry_run == no ]]; then
  say "build: ${build_mode:-none}"
  if [[ -n "$build_dir" ]] && ! grep -q '^WDLAB_CUDA:BOOL=ON' "$build_dir/CMakeCache.txt"; then
    fail "build: $build_dir was configured without the CUDA backend"; build_dir=""
  fi
  if [[ -n "$build_dir" && -d "$build_dir/carried-lib" ]]; then
    LD_LIBRARY_PATH="$build_dir/carried-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LD_LIBRARY_PATH
    say "libraries: carried: $(find "$build_dir/carried-lib" -maxdepth 1 -type f -printf '%f ')"
  fi
fi
wdlab=${build_dir:+$build_dir/bin/wdlab}

# --- 3. the binary starts --------------------------------------------------------------------
binary_ok=no
if [[ $dry_run == yes ]]; then
  echo "[plan] preflight: $wdlab --version; $wdlab info"
  binary_ok=yes
elif [[ -n "$build_dir" ]]; then
  if version=$(timeout 30 "$wdlab" --version 2>&1); then
    binary_ok=yes
    say "binary: $version"
    timeout 60 "$wdlab" info 2>&1 | sed 's/^/  info: /' | tee -a "$summary"
  else
    fail "binary: $wdlab does not start: $version"
    ldd "$wdlab" 2>&1 | grep 'not found' | sed 's/^/  missing: /' | tee -a "$summary"
  fi
fi

# --- 4. GPU tests ----------------------------------------------------------------------------
if [[ $dry_run == yes ]]; then
  run_stage "gpu tests" 60 ctest-gpu.log -- ctest --test-dir "$build_dir" -L gpu --output-on-failure --timeout 120
elif [[ -n "$build_dir" ]]; then
  run_stage "gpu tests" 60 ctest-gpu.log -- ctest --test-dir "$build_dir" -L gpu --output-on-failure --timeout 120
  ctest_rc=$?
  passed=$(grep -cE 'Test +#[0-9]+: .* Passed' "$out_dir/ctest-gpu.log" || true)
  skipped=$(grep -cE '\*\*\*Skipped' "$out_dir/ctest-gpu.log" || true)
  failed=$(grep -cE '\*\*\*(Failed|Timeout|Exception|Not Run)' "$out_dir/ctest-gpu.log" || true)
  say "gpu tests: $passed passed, $failed failed, $skipped skipped (ctest rc $ctest_rc, ctest-gpu.log)"
  grep -E 'tests passed|SKIPPED \(exit' "$out_dir/ctest-gpu.log" | sort -u | sed 's/^/  /' | tee -a "$summary" || true
  [[ $ctest_rc -eq 124 ]] && fail "gpu tests: ran out of time"
  [[ $ctest_rc -ne 0 || $failed -ne 0 ]] && fail "gpu tests: failures"
  [[ $((passed + failed + skipped)) -eq 0 ]] && fail "gpu tests: none found (ctest -L gpu)"
  if [[ $gpu_present == yes && $skipped -ne 0 ]]; then
    fail "gpu tests: $skipped skipped although nvidia-smi sees a GPU"
  fi
  if [[ $gpu_present == no ]]; then
    say "gpu tests: no GPU here, so nothing was verified on a device"
    [[ $verdict == PASS ]] && verdict=NOT-VERIFIED
  fi
else
  fail "gpu tests: not run, no build"
fi

# --- 5. crosscheck ---------------------------------------------------------------------------
# Side a: the double reference on this machine's CPU; side b: the CUDA backend. Exit 2 from
# wdlab crosscheck means the cuda side cannot run here (its one line is in the log).
crosscheck() {  # NAME OWN_LIMIT LOG ARGS...
  local name=$1 own=$2 log=$3
  shift 3
  run_stage "crosscheck $name" "$own" "$log" -- "$wdlab" crosscheck --a reference-double --b cuda "$@"
  local rc=$?
  [[ $dry_run == yes ]] && return 0
  grep -E '^crosscheck: .* compared' "$out_dir/$log" | sed 's/^/  /' | tee -a "$summary"
  grep -E '^(FAIL|MISSING|UNSUPPORTED)' "$out_dir/$log" | head -20 | sed 's/^/  /' | tee -a "$summary"
  case $rc in
    0) ;;
    2) fail "crosscheck $name: the cuda side cannot run: $(tail -1 "$out_dir/$log")" ;;
    124) fail "crosscheck $name: timed out" ;;
    *) fail "crosscheck $name: exit $rc" ;;
  esac
}
if [[ $binary_ok == yes ]]; then
  crosscheck "layers" 20 crosscheck-layers.log --layers
  # Exact mode: integer layer cases on the float32 path, bit for bit against the double oracle
  # (every sum below 2^24; cuDNN restricted to deterministic transform-free algorithms).
  crosscheck "exact" 15 crosscheck-exact.log --exact
  # One step of each optimizer on the full-width networks (BN as the paper's runs; batch 4: the
  # double reference also computes every metric group of measure() on the CPU, K passes each).
  crosscheck "first-order" 90 crosscheck-first-order.log \
    --network vgg16-bn,resnet32x4-bn --optimizer sgd,adam --steps 1 --batch 4
  # K-FAC: the double reference inverts every factor on the CPU (VGG16's 4608^2 A factors take
  # ~10 s each there), so VGG16 runs at half width; ResNet32x4 (A <= 2304^2) at full width.
  crosscheck "kfac resnet32x4" 60 crosscheck-kfac-resnet.log \
    --network resnet32x4-bn --optimizer kfac-f,kfac-g --steps 1 --batch 4
  crosscheck "kfac vgg16 (width 0.5)" 50 crosscheck-kfac-vgg.log \
    --network vgg16-bn --optimizer kfac-f,kfac-g --steps 1 --width-mult 0.5 --batch 4
else
  fail "crosscheck: not run, no working binary"
fi

# --- 6. benchmark ----------------------------------------------------------------------------
# Ours: batch 128 with 100 timed steps (the K-FAC mean then includes one T_inv = 100 inverse
# update and ten T_cov = 10 statistics passes: the per-step cost of an epoch), 640 and 2000 with
# 20. PyTorch: SGD and Adam, same models and batches, 20 steps. FP32, TF32 off in both.
models=(vgg16-bn resnet32x4-bn)
if [[ $binary_ok == yes ]]; then
  for m in "${models[@]}"; do
    run_stage "bench $m 128" 30 "bench-$m-128.json" -- "$wdlab" bench --backend cuda --model "$m" \
      --batches 128 --steps 100 --warmup 5 --tf32 off --format json
    run_stage "bench $m 640,2000" 30 "bench-$m-large.json" -- "$wdlab" bench --backend cuda --model "$m" \
      --batches 640,2000 --steps 20 --warmup 3 --tf32 off --format json
  done
else
  fail "bench: not run, no working binary"
fi
run_stage "pytorch" 70 bench-pytorch.json -- python3 "$src_dir/scripts/bench_pytorch.py" \
  --models "$(IFS=,; echo "${models[*]}")" --batches 128,640,2000 --optimizers sgd,adam --steps 20 --warmup 5 \
  --tf32 off ${wdlab:+--wdlab "$wdlab"}

# --- 7. summary: ratios, fraction of peak, targets -------------------------------------------
if [[ $dry_run == yes ]]; then
  echo "[plan] summary: ratios ours/PyTorch per model, batch and optimizer; fraction of 67 TFLOP/s;"
  echo "[plan]          targets: SGD <= 1.0x PyTorch at 128, <= 1.1x at 640/2000;"
  echo "[plan]          K-FAC mean step <= 1.35x our SGD (ResNet32x4), <= 1.6x (VGG16) at 128"
  echo "[plan] verdict and summary in $summary"
  exit 0
fi
python3 - "$out_dir" "${models[@]}" <<'EOF' | tee -a "$summary"
import json, os, sys
out, models = sys.argv[1], sys.argv[2:]
PEAK = 67.0
def load(name):
    p = os.path.join(out, name)
    try:
        with open(p) as f:
            return json.load(f)
    except Exception as e:
        print(f"summary: {name}: unreadable ({type(e).__name__})")
        return None
torch = load("bench-pytorch.json")
pt = {}
if torch:
    for r in torch["results"]:
        pt[(r["model"], r["optimizer"], r["batch"])] = r["median_step_s"]
fails = 0
def target(ok, text):
    global fails
    print(f"target {'PASS' if ok else 'FAIL'}: {text}")
    fails += 0 if ok else 1
for m in models:
    ours = {}
    for part in ("128", "large"):
        j = load(f"bench-{m}-{part}.json")
        if not j:
            continue
        if torch and m in torch.get("params", {}):
            same = torch["params"][m] == j["params"]
            print(f"params {m}: wdlab {j['params']}, pytorch {torch['params'][m]}: {'MATCH' if same else 'DIFFER'}")
        for r in j["results"]:
            if "error" in r:
                print(f"{m:<14} {r['optimizer']:<6} batch {r['batch']:>5}: not run: {r['error']}")
                continue
            ours[(r["optimizer"], r["batch"])] = r
            line = (f"{m:<14} {r['optimizer']:<6} batch {r['batch']:>5}: median {r['median_step_s'] * 1e3:8.2f} ms, "
                    f"mean {r['mean_step_s'] * 1e3:8.2f} ms, {r['images_per_s']:9.0f} img/s, "
                    f"{r['tflops']:6.2f} TFLOP/s = {100 * r['tflops'] / PEAK:5.1f}% of FP32 peak")
            p = pt.get((m, r["optimizer"], r["batch"]))
            if p:
                line += f", ours/PyTorch {r['median_step_s'] / p:.2f}"
            print(line)
    for b, lim in ((128, 1.0), (640, 1.1), (2000, 1.1)):
        o, p = ours.get(("sgd", b)), pt.get((m, "sgd", b))
        if o and p:
            target(o["median_step_s"] / p <= lim, f"{m} SGD step at batch {b}: ours/PyTorch {o['median_step_s'] / p:.2f} <= {lim}")
        else:
            target(False, f"{m} SGD step at batch {b}: not measured (ours {'yes' if o else 'no'}, PyTorch {'yes' if p else 'no'})")
    lim = 1.35 if m.startswith("resnet") else 1.6
    for k in ("kfac-f", "kfac-g"):
        o, s = ours.get((k, 128)), ours.get(("sgd", 128))
        if o and s:
            target(o["mean_step_s"] / s["mean_step_s"] <= lim,
                   f"{m} {k} epoch / SGD epoch at batch 128 (mean step over 100 steps): {o['mean_step_s'] / s['mean_step_s']:.2f} <= {lim}")
        else:
            target(False, f"{m} {k} epoch / SGD epoch at batch 128: not measured")
print(f"targets: {fails} failed")
sys.exit(1 if fails else 0)
EOF
[[ ${PIPESTATUS[0]} -eq 0 ]] || fail "bench: targets not met or not measured"

say "elapsed: $(($(date +%s) - start_s)) s of $budget_s s"
[[ $gpu_present == no && $verdict == FAIL ]] && say "note: no GPU here, so no failure above was seen on a device"
say "verdict: $verdict"
case $verdict in
  PASS) exit 0 ;;
  NOT-VERIFIED) exit 3 ;;
  *) exit 1 ;;
esac
