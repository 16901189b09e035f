#!/usr/bin/env bash
# wdlab GPU acceptance check (shared/GPU.md §6): one short run on a GPU machine does all of it.
#   1. prints the device (nvidia-smi) and the CUDA libraries found,
#   2. builds with -DCMAKE_CUDA_ARCHITECTURES=90, or uses a build carried from a development
#      machine (--build-dir; the GPU machine has no -dev packages, so this is the usual way),
#   3. checks that the binary starts (wdlab --version, wdlab info: the GPU it sees),
#   4. runs the GPU tests (ctest -L gpu -j 8; without ctest, the GPU test binary itself); on a
#      machine with a GPU a skipped test is a failure,
#   5. wdlab crosscheck --b cuda: every layer kind alone (and bit for bit in --exact mode), one step
#      of VGG16 and ResNet32x4 (with BN) with SGD and Adam at full width, K-FAC-F and K-FAC-G at
#      half width, against the double reference: 10 processes side by side, --threads 2 each (the
#      GPU host has 16 cores), each with its own line-flushed log,
#   6. wdlab bench --backend cuda (one call per model and batch: batch 128 all four optimizers and
#      100 steps, so the K-FAC mean includes one T_inv = 100 inversion; 640 and 2000 SGD and Adam
#      only unless --bench-all-large) and scripts/bench_pytorch.py (SGD, Adam) on the same GPU in
#      the same run: FP32 with TF32 pinned off in both, CUDA events, medians,
#   7. writes ${OUT:-./gpu-check-out}/summary.txt: every stage, the last lines of the log of a
#      failed or timed-out stage, the ratios ours/PyTorch, the fraction of FP32 peak (67 TFLOP/s,
#      H200) and the issue's targets as PASS/FAIL lines.
# Outputs: every log goes to a temporary folder, packed on every exit (also on SIGTERM/SIGINT and
# a stage's timeout) into $OUT/logs.tgz beside summary.txt: two files in $OUT (the GPU tool
# returns at most 8). Budget: every stage runs under `timeout` with its own limit, never past
# the budget WDLAB_GPU_CHECK_BUDGET_S (default 420 s, so a rerun fits in the machine's 15
# minutes); the plan's stage limits and their total are printed first, and the script refuses
# to start when the total exceeds the budget. It goes on past a failed stage and summarizes.
# LD_LIBRARY_PATH (carried-lib, then PyTorch's nvidia/*/lib from `import nvidia` or a find under
# site-packages) is set for wdlab and the tests only, never for python.
#
# Usage: scripts/gpu-check.sh [--build-dir DIR] [--jobs N] [--bench-all-large] [--dry-run]
#        scripts/gpu-check.sh --fake-device      (CPU test: each stage a stub; env
#            WDLAB_GPU_CHECK_FAKE="STAGE=fail STAGE=hang ...", WDLAB_GPU_CHECK_FAKE_LIMIT_S=2)
#        scripts/gpu-check.sh --prepare [DIR]     (on the development machine, see below)
# Exit: 0 all checks passed on a GPU; 1 a check failed, was skipped on a GPU, or ran out of
#       time; 2 bad usage or a plan over the budget; 3 no GPU here: built and ran, but nothing
#       was verified on a device; 128+N stopped by signal N (logs.tgz written all the same).
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
# which makes the carried binaries executable and runs wdlab and the tests with build-gpu/carried-lib
# and PyTorch's nvidia/*/lib folders on LD_LIBRARY_PATH. Without --build-dir it configures and
# builds here (needs the headers; that build is outside the plan's stage limits).
set -uo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=""
jobs=$(nproc 2>/dev/null || echo 4)
dry_run=no
fake=no
bench_all_large=no
prepare=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir=${2:?--build-dir needs a directory}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --dry-run) dry_run=yes; shift ;;
    --fake-device) fake=yes; shift ;;
    --bench-all-large) bench_all_large=yes; shift ;;
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

# --- the plan: every stage's own limit (s); their sum must fit the budget --------------------
# Stages run one after the other; the crosscheck stage runs its processes side by side under one
# limit. Sized for the GPU host (16 cores, one H100/H200); CPU-side figures in the README.
declare -A stage_limit=(
  [device]=10          # nvidia-smi
  [binary]=20          # wdlab --version, wdlab info
  [gpu-tests]=80       # ctest -L gpu -j 8 (test_cuda_gpu; ctest --timeout 75)
  [crosscheck]=120     # 10 wdlab crosscheck processes at once, --threads 2 each
  [bench-vgg16-bn-128]=28 [bench-vgg16-bn-640]=12 [bench-vgg16-bn-2000]=18
  [bench-resnet32x4-bn-128]=28 [bench-resnet32x4-bn-640]=12 [bench-resnet32x4-bn-2000]=18
  [pytorch-vgg16-bn]=30 [pytorch-resnet32x4-bn]=30
  [summary]=5          # ratios and targets (python, no device)
)
stage_order=(device binary gpu-tests crosscheck
  bench-vgg16-bn-128 bench-vgg16-bn-640 bench-vgg16-bn-2000
  bench-resnet32x4-bn-128 bench-resnet32x4-bn-640 bench-resnet32x4-bn-2000
  pytorch-vgg16-bn pytorch-resnet32x4-bn summary)
models=(vgg16-bn resnet32x4-bn)
planned_s=0
for s in "${stage_order[@]}"; do planned_s=$((planned_s + stage_limit[$s])); done
budget_s=${WDLAB_GPU_CHECK_BUDGET_S:-420}
if ! [[ $budget_s =~ ^[0-9]+$ ]]; then
  echo "gpu-check: WDLAB_GPU_CHECK_BUDGET_S must be a whole number of seconds, not '$budget_s'" >&2; exit 2
fi
if ((planned_s > budget_s)); then
  echo "gpu-check: the planned stage limits add up to ${planned_s} s, more than the budget ${budget_s} s (WDLAB_GPU_CHECK_BUDGET_S); refusing to start" >&2
  exit 2
fi
# --fake-device: each stage's limit capped at WDLAB_GPU_CHECK_FAKE_LIMIT_S (default 2 s).
fake_limit_s=${WDLAB_GPU_CHECK_FAKE_LIMIT_S:-2}

# --- logs: a temporary folder, packed into $OUT/logs.tgz on every exit -----------------------
# $OUT receives exactly two files, summary.txt and logs.tgz (the GPU tool returns at most 8).
logs=""
if [[ $dry_run == no ]]; then
  logs=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
  : >"$summary"
  rm -f "$out_dir/logs.tgz"
fi
say() { if [[ $dry_run == yes ]]; then echo "$*"; else echo "$*" | tee -a "$summary"; fi; }
verdict=PASS
fail() { say "FAIL: $*"; verdict=FAIL; }
# The last lines of a log into the summary (a failed, timed-out or interrupted stage).
tail_into_summary() {  # LOGFILE
  [[ -s "$logs/$1" ]] || { say "  ($1 is empty)"; return 0; }
  say "  last lines of $1:"
  tail -n "${WDLAB_GPU_CHECK_TAIL_LINES:-8}" "$logs/$1" | sed 's/^/    | /' | tee -a "$summary"
}

declare -A running=()   # pid of a stage's `timeout` -> "STAGE|LOG [ERRLOG]", while it runs
finished=no
# shellcheck disable=SC2317  # called by the trap
finish() {
  local rc=$? pid
  trap - EXIT TERM INT HUP
  [[ $dry_run == yes || -z "$logs" ]] && exit "$rc"
  if ((${#running[@]})); then
    for pid in "${!running[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    sleep 1
    for pid in "${!running[@]}"; do
      kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
      say "interrupted: ${running[$pid]%%|*} was still running"
      local f; for f in ${running[$pid]#*|}; do tail_into_summary "$f"; done
    done
  fi
  [[ $finished == yes ]] || say "gpu-check: stopped early (exit $rc) after $(($(date +%s) - start_s)) s; logs so far in logs.tgz"
  tar -czf "$out_dir/logs.tgz" -C "$logs" . 2>/dev/null || echo "gpu-check: packing $logs failed" >>"$summary"
  rm -rf "$logs"
  exit "$rc"
}
# shellcheck disable=SC2317  # called by the trap
on_signal() { say "gpu-check: got SIG$1"; exit "$2"; }
trap finish EXIT
trap 'on_signal TERM 143' TERM
trap 'on_signal INT 130' INT
trap 'on_signal HUP 129' HUP

start_s=$(date +%s)
left_s() { local left=$((budget_s - ($(date +%s) - start_s))); echo $((left > 0 ? left : 1)); }
# A stage's limit: its own, never past what is left of the budget (and capped when faked).
limit() {
  local own=${stage_limit[$1]} left; left=$(left_s)
  ((own < left)) || own=$left
  [[ $fake == yes && $own -gt $fake_limit_s ]] && own=$fake_limit_s
  echo "$own"
}

# Run-time libraries for wdlab and the test binaries only (python gets the environment as is:
# PyTorch loads its own copies of these libraries).
# libenv is the `env LD_LIBRARY_PATH=...` prefix of those calls (set once the libraries are known).
run_libs=""
libenv=(env)
set_libenv() {
  libenv=(env)
  [[ -n "$run_libs" ]] && libenv=(env "LD_LIBRARY_PATH=$run_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  return 0
}
# Line-buffered stdout where stdbuf exists, so a killed stage keeps every line it printed.
linebuf=()
command -v stdbuf >/dev/null 2>&1 && linebuf=(stdbuf -oL -eL)

# --fake-device: a stage's command becomes this stub. WDLAB_GPU_CHECK_FAKE lists STAGE=MODE
# words (MODE: ok, fail, hang); a stub prints two lines, then exits 0, exits 1, or sleeps.
# shellcheck disable=SC2317  # run through declare -f in a bash of its own
fake_stub() {  # STAGE
  local mode=ok w
  for w in ${WDLAB_GPU_CHECK_FAKE:-}; do [[ ${w%%=*} == "$1" ]] && mode=${w#*=}; done
  echo "fake $1: LD_LIBRARY_PATH=${LD_LIBRARY_PATH-unset}"
  echo "fake $1: partial result 1"
  echo "fake $1: partial result 2"
  case $mode in
    fail) echo "fake $1: failing" >&2; return 1 ;;
    hang) sleep 600 ;;
    *) return 0 ;;
  esac
}

# start_stage STAGE LOG [ERRLOG] -- COMMAND...: COMMAND under `timeout` in the background (so a
# signal reaches the trap at once), stdout to LOG, stderr to ERRLOG (default: LOG too).
# Sets started_pid. --dry-run prints the plan line instead.
started_pid=""
start_stage() {
  local stage=$1 log=$2 err=$2
  if [[ $3 != -- ]]; then err=$3; shift; fi
  shift 3
  if [[ $dry_run == yes ]]; then
    echo "[plan] $stage (limit ${stage_limit[${stage%%:*}]}s, log $log): $*"
    started_pid=""; return 0
  fi
  # `timeout` runs programs, not functions: the stub goes to a bash of its own, behind the
  # command's `env LD_LIBRARY_PATH=...` prefix where it has one (the stub prints what it got).
  if [[ $fake == yes ]]; then
    local prefix=()
    if [[ $1 == env ]]; then prefix=(env); shift; while [[ $1 == *=* ]]; do prefix+=("$1"); shift; done; fi
    set -- "${prefix[@]}" bash -c "$(declare -f fake_stub); fake_stub \"\$1\"" fake_stub "$stage"
  fi
  if [[ $err == "$log" ]]; then
    timeout -k 5 "$(limit "${stage%%:*}")" "$@" >"$logs/$log" 2>&1 &
  else
    timeout -k 5 "$(limit "${stage%%:*}")" "$@" >"$logs/$log" 2>"$logs/$err" &
  fi
  started_pid=$!
  running[$started_pid]="$stage|$log$([[ $err != "$log" ]] && echo " $err")"
}
# wait_stage PID T0: waits, reports, puts a failed stage's last lines in the summary; returns rc.
wait_stage() {
  local pid=$1 t0=$2 rc entry f
  [[ -n "$pid" ]] || return 0
  wait "$pid"; rc=$?
  entry=${running[$pid]}; unset "running[$pid]"
  say "${entry%%|*}: exit $rc in $(($(date +%s) - t0)) s (${entry#*|})"
  if ((rc != 0)); then
    ((rc == 124)) && say "${entry%%|*}: timed out"
    for f in ${entry#*|}; do tail_into_summary "$f"; done
  fi
  return "$rc"
}
run_stage() {  # STAGE LOG [ERRLOG] -- COMMAND...
  local t0; t0=$(date +%s)
  start_stage "$@"
  wait_stage "$started_pid" "$t0"
}

say "wdlab gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
say "source: $src_dir ($(git -C "$src_dir" rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
plan_line="plan: $(for s in "${stage_order[@]}"; do printf '%s %ss, ' "$s" "${stage_limit[$s]}"; done)"
say "${plan_line%, }"
say "plan: stage limits total ${planned_s} s <= budget ${budget_s} s"
[[ $dry_run == yes ]] && say "dry run: the plan, nothing is executed"
[[ $fake == yes ]] && say "fake device: every stage is a stub (limits capped at ${fake_limit_s} s; WDLAB_GPU_CHECK_FAKE='${WDLAB_GPU_CHECK_FAKE:-}')"

# --- 1. device -------------------------------------------------------------------------------
gpu_present=no
if [[ $dry_run == yes ]]; then
  echo "[plan] device (limit ${stage_limit[device]}s): nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap"
elif [[ $fake == yes ]]; then
  run_stage device device.log -- true && gpu_present=yes
elif command -v nvidia-smi >/dev/null 2>&1; then
  if run_stage device device.log -- nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap \
       --format=csv,noheader; then
    gpu_present=yes
    while IFS= read -r line; do say "device: $line"; done <"$logs/device.log"
  fi
else
  say "device: nvidia-smi not found (no NVIDIA driver on this machine)"
fi

# cuBLAS/cuDNN on the GPU machine come as PyTorch's nvidia-* wheels (shared/GPU.md): their lib
# folders go on the run-time path of wdlab and the tests. `import nvidia` first; where that
# finds nothing, a find under python's site-packages folders.
if [[ $dry_run == no ]] && command -v python3 >/dev/null 2>&1; then
  wheel_libs=$(timeout 30 python3 - <<'PYEOF' 2>/dev/null || true
import glob, os
try:
    import nvidia
    for root in nvidia.__path__:
        for lib in sorted(glob.glob(os.path.join(root, "*", "lib"))):
            print(lib)
except ImportError:
    pass
PYEOF
)
  how="import nvidia"
  if [[ -z "$wheel_libs" ]]; then
    how="find"
    site_dirs=$(timeout 20 python3 -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()] + sys.path))' 2>/dev/null \
                | grep -E 'site-packages|dist-packages' | sort -u || true)
    wheel_libs=$(while IFS= read -r d; do
                   [[ -d "$d/nvidia" ]] && timeout 20 find "$d/nvidia" -mindepth 2 -maxdepth 2 -type d -name lib
                 done <<<"$site_dirs" | sort -u)
  fi
  if [[ -n "$wheel_libs" ]]; then
    run_libs=$(paste -sd: <<<"$wheel_libs")
    say "libraries: nvidia wheels ($how): $(tr '\n' ' ' <<<"$wheel_libs")"
  else
    say "libraries: no nvidia/*/lib folder found (import nvidia, then find under site-packages)"
  fi
fi

# --- 2. build --------------------------------------------------------------------------------
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
if [[ $fake == yes ]]; then
  build_mode="none (fake device)"
  build_dir=""
elif [[ $dry_run == yes ]]; then
  if [[ -n "$build_dir" ]]; then
    echo "[plan] build: use the carried build $build_dir (chmod +x bin/*, relocate its ctest files; carried-lib + nvidia/*/lib on LD_LIBRARY_PATH of wdlab and the tests only)"
  else
    echo "[plan] build: cmake -S $src_dir -B $src_dir/build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DWDLAB_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build -j $jobs (not counted in the plan: use a carried build)"
    build_dir="$src_dir/build-gpu"
  fi
elif [[ -n "$build_dir" ]]; then
  build_dir=$(cd "$build_dir" && pwd)
  [[ -f "$build_dir/CMakeCache.txt" ]] || { fail "build: $build_dir is not a CMake build"; build_dir=""; }
  if [[ -n "$build_dir" ]]; then
    build_mode="carried ($build_dir)"
    # The carry may drop the executable bits.
    chmod +x "$build_dir"/bin/* 2>/dev/null || true
    relocate_build "$build_dir" || build_dir=""
  fi
else
  build_dir="$src_dir/build-gpu"
  build_mode="built here ($build_dir, CMAKE_CUDA_ARCHITECTURES=90)"
  say "build: configuring $build_dir (outside the plan's stage limits)"
  if ! timeout "$(left_s)" cmake -S "$src_dir" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
         -DWDLAB_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 >"$logs/configure.log" 2>&1; then
    fail "build: configure failed or timed out (configure.log)"; tail_into_summary configure.log; build_dir=""
  elif ! timeout "$(left_s)" cmake --build "$build_dir" -j "$jobs" >"$logs/build.log" 2>&1; then
    fail "build: build failed or timed out (build.log)"; tail_into_summary build.log; build_dir=""
  fi
fi
if [[ $dry_run == no && $fake == no ]]; then
  say "build: ${build_mode:-none}"
  if [[ -n "$build_dir" ]] && ! grep -q '^WDLAB_CUDA:BOOL=ON' "$build_dir/CMakeCache.txt"; then
    fail "build: $build_dir was configured without the CUDA backend"; build_dir=""
  fi
  if [[ -n "$build_dir" && -d "$build_dir/carried-lib" ]]; then
    run_libs="$build_dir/carried-lib${run_libs:+:$run_libs}"
    say "libraries: carried: $(find "$build_dir/carried-lib" -maxdepth 1 -type f -printf '%f ')"
  fi
fi
set_libenv
wdlab=${build_dir:+$build_dir/bin/wdlab}
[[ $fake == yes ]] && wdlab=wdlab

# --- 3. the binary starts --------------------------------------------------------------------
binary_ok=no
if [[ $dry_run == yes ]]; then
  echo "[plan] binary (limit ${stage_limit[binary]}s): $wdlab --version; $wdlab info"
  binary_ok=yes
elif [[ -n "$wdlab" ]]; then
  # shellcheck disable=SC2016  # $1 is expanded by the inner bash
  if run_stage binary binary.log -- "${libenv[@]}" bash -c '"$1" --version && "$1" info' wdlab "$wdlab"; then
    binary_ok=yes
    sed 's/^/  /' "$logs/binary.log" | tee -a "$summary"
  else
    fail "binary: $wdlab does not start"
    [[ $fake == no ]] && "${libenv[@]}" ldd "$wdlab" 2>&1 | grep 'not found' | sed 's/^/  missing: /' | tee -a "$summary"
  fi
fi

# --- 4. GPU tests ----------------------------------------------------------------------------
# ctest -L gpu -j 8 (ctest's own --timeout 75 per test, inside the stage's limit); where the GPU
# machine has no ctest, the GPU test binary itself (exit 77: skipped, as ctest would report).
gpu_bin=${build_dir:+$build_dir/bin/test_cuda_gpu}
if [[ $dry_run == yes ]]; then
  echo "[plan] gpu-tests (limit ${stage_limit[gpu-tests]}s): ctest --test-dir $build_dir -L gpu -j 8 --output-on-failure --timeout 75 (no ctest: $gpu_bin)"
elif [[ -n "$build_dir" || $fake == yes ]]; then
  if [[ $fake == yes ]] || command -v ctest >/dev/null 2>&1; then
    run_stage gpu-tests ctest-gpu.log -- "${libenv[@]}" "${linebuf[@]}" ctest --test-dir "$build_dir" -L gpu -j 8 \
      --output-on-failure --timeout 75
    ctest_rc=$?
    passed=$(grep -cE 'Test +#[0-9]+: .* Passed' "$logs/ctest-gpu.log" || true)
    skipped=$(grep -cE '\*\*\*Skipped' "$logs/ctest-gpu.log" || true)
    failed=$(grep -cE '\*\*\*(Failed|Timeout|Exception|Not Run)' "$logs/ctest-gpu.log" || true)
    grep -E 'tests passed|SKIPPED \(exit' "$logs/ctest-gpu.log" | sort -u | sed 's/^/  /' | tee -a "$summary" || true
  else
    say "gpu tests: no ctest on this machine; running $gpu_bin directly"
    run_stage gpu-tests gpu-tests.log -- "${libenv[@]}" "${linebuf[@]}" "$gpu_bin"
    ctest_rc=$?
    passed=0 failed=0 skipped=0
    case $ctest_rc in 0) passed=1 ;; 77) skipped=1; ctest_rc=0 ;; *) failed=1 ;; esac
  fi
  say "gpu tests: $passed passed, $failed failed, $skipped skipped (rc $ctest_rc)"
  [[ $ctest_rc -eq 124 ]] && fail "gpu tests: ran out of time"
  [[ $ctest_rc -ne 0 || $failed -ne 0 ]] && fail "gpu tests: failures"
  [[ $((passed + failed + skipped)) -eq 0 && $fake == no ]] && fail "gpu tests: none found (ctest -L gpu)"
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
# Side a: the double reference on this machine's CPU; side b: the CUDA backend. The reference
# side is the CPU-heavy one (measure()'s metric groups, K-FAC's inversions), so the cases run as
# separate processes side by side, --threads 2 each (16 cores), each line flushed to its own log.
# Exit 2 from wdlab crosscheck means the cuda side cannot run here (its one line is in the log).
xc_names=() xc_pids=()
xc() {  # NAME ARGS...
  local name=$1; shift
  start_stage "crosscheck:$name" "crosscheck-$name.log" -- "${libenv[@]}" "${linebuf[@]}" "$wdlab" crosscheck \
    --a reference-double --b cuda "$@" --threads 2
  xc_names+=("$name") xc_pids+=("$started_pid")
}
if [[ $binary_ok == yes ]]; then
  [[ $dry_run == yes ]] && echo "[plan] crosscheck (limit ${stage_limit[crosscheck]}s for all, side by side):"
  xc_t0=$(date +%s)
  xc layers --layers
  # Exact mode: integer layer cases on the float32 path, bit for bit against the double oracle.
  xc exact --exact
  # One step of each first-order optimizer on the full-width networks (BN as the paper's runs;
  # batch 4), one process per network and optimizer.
  for net in vgg16-bn resnet32x4-bn; do
    for opt in sgd adam; do xc "$net-$opt" --network "$net" --optimizer "$opt" --steps 1 --batch 4; done
  done
  # K-FAC: the double reference inverts every factor on the CPU (cubic in the width), so both
  # networks run at half width: the point is the coverage of every K-FAC path on the GPU.
  for net in vgg16-bn resnet32x4-bn; do
    for opt in kfac-f kfac-g; do
      xc "$net-$opt-w0.5" --network "$net" --optimizer "$opt" --steps 1 --batch 4 --width-mult 0.5
    done
  done
  if [[ $dry_run == no ]]; then
    for i in "${!xc_pids[@]}"; do
      wait_stage "${xc_pids[$i]}" "$xc_t0"; rc=$?
      log="$logs/crosscheck-${xc_names[$i]}.log"
      grep -E '^crosscheck: .* compared' "$log" | sed 's/^/  /' | tee -a "$summary"
      grep -E '^(FAIL|MISSING|UNSUPPORTED)' "$log" | head -10 | sed 's/^/  /' | tee -a "$summary"
      case $rc in
        0) ;;
        2) fail "crosscheck ${xc_names[$i]}: the cuda side cannot run: $(tail -1 "$log")" ;;
        124) fail "crosscheck ${xc_names[$i]}: timed out (its lines so far are in the log)" ;;
        *) fail "crosscheck ${xc_names[$i]}: exit $rc" ;;
      esac
    done
  fi
else
  fail "crosscheck: not run, no working binary"
fi

# --- 6. benchmark ----------------------------------------------------------------------------
# One call per model and batch, each its own JSON, so a timeout loses one row group only.
# Ours: batch 128 with 100 timed steps and all four optimizers (the K-FAC mean then includes one
# T_inv = 100 inverse update and ten T_cov = 10 statistics passes: the per-step cost of an epoch);
# 640 and 2000 with 20 steps, SGD and Adam only (--bench-all-large: all four). PyTorch: SGD and
# Adam, same models and batches, 20 steps, in the same call of this script, rows on stderr as
# they are measured. FP32, TF32 off in both.
large_opts=sgd,adam
[[ $bench_all_large == yes ]] && large_opts=sgd,adam,kfac-f,kfac-g
if [[ $binary_ok == yes ]]; then
  for m in "${models[@]}"; do
    run_stage "bench-$m-128" "bench-$m-128.json" "bench-$m-128.stderr.log" -- "${libenv[@]}" "$wdlab" bench \
      --backend cuda --model "$m" --batches 128 --steps 100 --warmup 5 --tf32 off --format jsonl
    for b in 640 2000; do
      run_stage "bench-$m-$b" "bench-$m-$b.json" "bench-$m-$b.stderr.log" -- "${libenv[@]}" "$wdlab" bench \
        --backend cuda --model "$m" --batches "$b" --optimizers "$large_opts" --steps 20 --warmup 3 \
        --tf32 off --format jsonl
    done
  done
else
  fail "bench: not run, no working binary"
fi
for m in "${models[@]}"; do
  run_stage "pytorch-$m" "bench-pytorch-$m.json" "bench-pytorch-$m.stderr.log" -- python3 -u \
    "$src_dir/scripts/bench_pytorch.py" --models "$m" --batches 128,640,2000 --optimizers sgd,adam \
    --steps 20 --warmup 5 --tf32 off
done

# --- 7. summary: ratios, fraction of peak, targets -------------------------------------------
if [[ $dry_run == yes ]]; then
  echo "[plan] summary (limit ${stage_limit[summary]}s): ratios ours/PyTorch per model, batch and optimizer; fraction of 67 TFLOP/s;"
  echo "[plan]          targets: SGD <= 1.0x PyTorch at 128, <= 1.1x at 640/2000;"
  echo "[plan]          K-FAC mean step <= 1.35x our SGD (ResNet32x4), <= 1.6x (VGG16) at 128"
  echo "[plan] comes back in $out_dir: summary.txt and logs.tgz (every log and JSON), nothing else"
  exit 0
fi
timeout "$(limit summary)" python3 - "$logs" "${models[@]}" <<'PYEOF' | tee -a "$summary"
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
def load_rows(name):
    # `wdlab bench --format jsonl`: a header line, then one line per measured row; a call stopped
    # by its limit keeps the rows it finished (a cut last line is dropped).
    p = os.path.join(out, name)
    try:
        with open(p) as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
    except Exception as e:
        print(f"summary: {name}: unreadable ({type(e).__name__})")
        return None
    objs = []
    for l in lines:
        try:
            objs.append(json.loads(l))
        except ValueError:
            print(f"summary: {name}: an unfinished line dropped")
    if not objs or "optimizer" in objs[0]:
        print(f"summary: {name}: no header line")
        return None
    head = objs[0]
    head["results"] = objs[1:]
    return head
pt, torch_params = {}, {}
for m in models:
    torch = load(f"bench-pytorch-{m}.json")
    if torch:
        torch_params.update(torch.get("params", {}))
        for r in torch["results"]:
            pt[(r["model"], r["optimizer"], r["batch"])] = r["median_step_s"]
fails = 0
def target(ok, text):
    global fails
    print(f"target {'PASS' if ok else 'FAIL'}: {text}")
    fails += 0 if ok else 1
for m in models:
    ours = {}
    for part in ("128", "640", "2000"):
        j = load_rows(f"bench-{m}-{part}.json")
        if not j:
            continue
        if part == "128" and m in torch_params:
            same = torch_params[m] == j["params"]
            print(f"params {m}: wdlab {j['params']}, pytorch {torch_params[m]}: {'MATCH' if same else 'DIFFER'}")
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
PYEOF
[[ ${PIPESTATUS[0]} -eq 0 ]] || fail "bench: targets not met or not measured"

finished=yes
say "elapsed: $(($(date +%s) - start_s)) s of $budget_s s (stage limits total ${planned_s} s)"
[[ $gpu_present == no && $verdict == FAIL ]] && say "note: no GPU here, so no failure above was seen on a device"
say "verdict: $verdict"
case $verdict in
  PASS) exit 0 ;;
  NOT-VERIFIED) exit 3 ;;
  *) exit 1 ;;
esac
