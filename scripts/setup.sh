#!/usr/bin/env bash
# wdlab set-up for a fresh Debian 12 machine (run as root): installs the Debian packages that are
# missing, configures and builds, then runs the main job or the test suite.
#   scripts/setup.sh main    install, build, run `wdlab theory`, then `wdlab reproduce --suite demo`
#                            (the three mechanisms in minutes, report in runs/demo/report; README's first command)
#   scripts/setup.sh test    install (with the test-only packages below), build (and an ASan+UBSan
#                            build in build-asan), run every test via ctest, the sanitized suite as
#                            one of them (the README's second command)
#   scripts/setup.sh deps    install only;   scripts/setup.sh build   install and build only
#   scripts/setup.sh profile install the profiling tools below only (README: "The engine's own loops")
# Environment: BUILD_DIR (default build), JOBS (default nproc), WDLAB_CMAKE_ARGS (extra cmake args).
set -euo pipefail

mode=${1:-main}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}

packages=(
  cmake ninja-build g++ pkg-config
  libeigen3-dev doctest-dev libboost-program-options-dev nlohmann-json3-dev libfmt-dev zlib1g-dev
  libbenchmark-dev libopenblas-dev
  dataset-fashion-mnist
  python3 python3-numpy python3-matplotlib
)
# Test-only real parts, installed by `scripts/setup.sh test` only (nothing else needs them):
#   python3-torch     the `torch` test loads wdlab checkpoints in PyTorch (scripts/torch_load.py)
#                     and reports SKIPPED where it is missing
#   slurm-wlm munge   the `slurm` test starts a private single-node Slurm from them on 127.0.0.1
#                     and submits a sweep's job array (tests/apps/slurm_sweep.py); no daemon of
#                     the system is configured or started.
test_packages=(
  python3-torch
  slurm-wlm munge
)
# Profiling only, installed by `scripts/setup.sh profile` (no build or test needs it):
#   linux-perf        `perf record -g` / `perf stat` on `wdlab bench`
profile_packages=(
  linux-perf
)

install_missing() {  # install_missing PACKAGE...
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "setup: all Debian packages present"
  fi
}

build() {
  # The CUDA toolkit, where installed, is not always on PATH; the backend builds when nvcc is found.
  if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH=/usr/local/cuda/bin:$PATH
  fi
  # shellcheck disable=SC2086
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${WDLAB_CMAKE_ARGS:-}
  cmake --build "$build_dir" -j "$jobs"
}

case "$mode" in
  deps) install_missing "${packages[@]}" ;;
  profile) install_missing "${profile_packages[@]}" ;;
  build) install_missing "${packages[@]}"; build ;;
  main)
    install_missing "${packages[@]}"
    build
    "$build_dir/bin/wdlab" theory
    # The three mechanisms on Fashion-MNIST in minutes, then their report (runs/demo/report/).
    "$build_dir/bin/wdlab" reproduce --suite demo --out runs/demo -j "$jobs"
    ;;
  test)
    install_missing "${packages[@]}" "${test_packages[@]}"
    # The sanitized tree first (CPU code only, ASan + UBSan); the main tree runs its suite as one
    # test, so the closing line of the one ctest below counts both.
    asan_dir=${ASAN_BUILD_DIR:-build-asan}
    # -O1: instrumented -O3 compiles about four times slower than the plain build on 2 cores, and
    # -O1 is what the sanitizers' documentation recommends for readable reports anyway.
    cmake -S . -B "$asan_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" \
      -DWDLAB_SANITIZE=ON -DWDLAB_CUDA=OFF
    cmake --build "$asan_dir" -j "$jobs"
    WDLAB_CMAKE_ARGS="${WDLAB_CMAKE_ARGS:-} -DWDLAB_SANITIZER_BUILD=$(cd "$asan_dir" && pwd)" build
    ctest --test-dir "$build_dir" --output-on-failure -j "$jobs"
    ;;
  *) echo "usage: scripts/setup.sh [main|test|deps|build|profile]" >&2; exit 2 ;;
esac
