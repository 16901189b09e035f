#!/usr/bin/python3
"""`wdlab sweep` on a real Slurm (ctest label `slurm`): usage  slurm_sweep.py WDLAB_BIN WORK_DIR

Starts a private single-node Slurm (slurm_cluster.py) in /tmp/wdlab-slurm-XXXXXX, works in
WORK_DIR/slurm-sweep (both removed when the test passes, kept when it fails), and on the tiny grid of
tests/apps/sweep_support.hpp (2x2, one learning rate learns nothing):
  1. runs the local sweep `wdlab sweep -j 2` (the reference answer);
  2. emits the job array with --partition/--time/--account and submits it with `sbatch`; one task is
     held after its step 3 (WDLAB_FAULT_PAUSE_AT through a wrapper named by $WDLAB), its job's
     resources are read back from `scontrol show job`, then it is cancelled with `scancel` (one
     array element) and must leave a mid-epoch checkpoint;
  3. `wdlab sweep --collect` must refuse (exit 5) and name that point;
  4. the submit helper resubmits only that task and the collect job after it; the task must resume
     from its checkpoint, the collect job must select and retrain;
  5. every point's final metrics, the selected point and the final run must equal the local sweep's.
Every wait is bounded. The daemons are stopped by pid whatever happens (finally; SIGTERM/SIGINT
handlers; PR_SET_PDEATHSIG for a SIGKILL). Exit 77 (skip) only where Slurm cannot start, with the
reason printed; any other problem fails.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slurm_cluster  # noqa: E402

SKIP = 77
PAUSE_STEP = 3  # of 8 steps per epoch: mid-epoch


class Failed(Exception):
    pass


def check(cond, what):
    print(("ok      " if cond else "FAILED  ") + what, flush=True)
    if not cond:
        raise Failed(what)


def wait_for(pred, timeout, what, step=0.25):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise Failed(f"timed out after {timeout} s waiting for {what}")


def slurp(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def final_row(run):
    """The last epoch row of a run's metrics.jsonl, without timing fields."""
    last = None
    for line in slurp(os.path.join(run, "metrics.jsonl")).splitlines():
        row = json.loads(line)
        if "epoch" in row and "event" not in row:
            last = row
    for k in ("seconds", "wall_s", "time", "elapsed_s", "epoch_seconds"):
        (last or {}).pop(k, None)
    return last


def ms_best_id(out):
    return json.loads(slurp(os.path.join(out, "manifest.json")) or "{}").get("best", {}).get("id", "?")


def write_grid(d):
    # The grid of tests/apps/sweep_support.hpp (write_tiny_grid).
    base = {"name": "tiny", "train_subset": 320, "validation": 64, "test_subset": 128, "model": "mlp",
            "arch": {"depth": 1, "width": 16}, "optimizer": "sgd", "epochs": 1, "batch_size": 32,
            "regularization": "wd", "checkpoint": {"keep": 1}}
    grid = {"name": "tiny", "base": "base.json", "set": {"momentum": 0.9},
            "axes": {"lr": [1e-6, 0.05], "weight_decay": [0.0, 1e-4]}}
    with open(os.path.join(d, "base.json"), "w") as f:
        json.dump(base, f)
    with open(os.path.join(d, "grid.json"), "w") as f:
        json.dump(grid, f)
    return os.path.join(d, "grid.json")


def main(wdlab, work):
    if not os.path.exists("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"):
        print("SKIP: Debian's Fashion-MNIST (dataset-fashion-mnist) is not installed")
        return SKIP
    d = os.path.join(os.path.abspath(work), "slurm-sweep")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    # The cluster's folder is short (/tmp/wdlab-slurm-XXXXXX): munge's socket path must fit in a
    # sockaddr_un (108 bytes), which a deep build directory would not.
    cluster_dir = tempfile.mkdtemp(prefix="wdlab-slurm-")
    cluster = slurm_cluster.Cluster(cluster_dir)

    def on_signal(sig, _frame):
        raise SystemExit(128 + sig)  # unwinds through the finally below

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t0 = time.monotonic()
    passed = False
    try:
        try:
            cluster.start()
        except slurm_cluster.CannotStart as e:
            print(f"SKIP: Slurm cannot start here: {e}")
            return SKIP
        print(f"slurm: single node '{cluster.node}' with {cluster.cpus} CPUs up in {time.monotonic() - t0:.1f} s", flush=True)
        run_test(cluster, wdlab, d)
        print(f"slurm sweep test passed in {time.monotonic() - t0:.1f} s")
        passed = True
        return 0
    except (Failed, RuntimeError, OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
        print(f"slurm sweep test FAILED: {type(e).__name__}: {e}\n--- slurmctld.log:\n"
              f"{slurm_cluster._tail(os.path.join(cluster_dir, 'log', 'slurmctld.log'))}\n"
              f"(kept for a look: {d} and {cluster_dir})")
        return 1
    finally:
        cluster.stop()
        left = [n for n, p in cluster.procs if p.poll() is None]
        print("daemons stopped" if not left else f"daemons still running: {left}", flush=True)
        if passed or not cluster.procs:  # passed, or skipped before any daemon started
            shutil.rmtree(cluster_dir, ignore_errors=True)
            if passed:
                shutil.rmtree(d, ignore_errors=True)


def run_test(cluster, wdlab, d):
    grid = write_grid(d)
    local, out = os.path.join(d, "local"), os.path.join(d, "slurm")
    script = os.path.join(d, "tiny.sbatch")
    submit = os.path.join(d, "tiny-submit.sh")

    def wd(*args, env=None):
        return subprocess.run([wdlab, *args], capture_output=True, text=True, env=env, timeout=120)

    ids = re.findall(r"^  ([0-9a-f]{12})  ", wd("sweep", "--grid", grid, "--out", out, "--dry-run").stdout, re.M)
    check(len(ids) == 4, f"4 points: {ids}")
    t = time.monotonic()
    r = wd("sweep", "--grid", grid, "--out", local, "-j", "2")
    check(r.returncode == 0, f"local sweep -j 2 ({time.monotonic() - t:.1f} s)" + ("" if r.returncode == 0 else r.stderr))

    r = wd("sweep", "--grid", grid, "--out", out, "--emit-slurm", script, "--partition", slurm_cluster.PARTITION,
           "--time", "5", "--account", "wdlab-test")
    check(r.returncode == 0 and os.path.exists(submit), "emit the job array and its submit helper")

    # First submission: every task through a wrapper that holds the target point after step 3.
    k = 1
    target = ids[k]
    wrapper = os.path.join(d, "hold-wdlab.sh")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/bash\ncase \"$*\" in *\"/configs/{target}.json\"*) export WDLAB_FAULT_PAUSE_AT={PAUSE_STEP};; esac\n"
                f"exec {wdlab} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    r = cluster.run("sbatch", "--parsable", script, extra_env={"WDLAB": wrapper})
    job = r.stdout.strip().split(";")[0]
    print(f"sbatch {script}: job {job}", flush=True)
    log = os.path.join(out, "logs", target + ".log")
    wait_for(lambda: f"paused after step {PAUSE_STEP}" in slurp(log), 60, f"task {k} to reach step {PAUSE_STEP}")
    show = cluster.run("scontrol", "show", "job", f"{job}_{k}").stdout
    print(show, flush=True)
    check("JobState=RUNNING" in show, f"task {k} runs")
    check(f"Partition={slurm_cluster.PARTITION}" in show, "--partition passed through")
    check("TimeLimit=00:05:00" in show, "--time passed through")
    check("Account=wdlab-test" in show, "--account passed through")
    check(re.search(r"\bNumCPUs=1\b", show) is not None and "CPUs/Task=1" in show, "one CPU per task")
    check("gres" not in show.lower() and "gpu" not in show.lower(), "no GPU asked for (backend reference)")

    cluster.run("scancel", f"{job}_{k}")
    wait_for(lambda: not cluster.run("squeue", "-h", "-j", job, "-o", "%i", check=False).stdout.strip(), 60,
             f"array job {job} to end")
    run = os.path.join(out, "runs", target)
    check(os.path.exists(os.path.join(run, "config.json")) and not os.path.exists(os.path.join(run, "DONE")),
          f"the cancelled point {target} is unfinished")
    check(f"checkpoint written at epoch 1 batch {PAUSE_STEP + 1}" in slurp(log),
          "the cancelled run wrote a mid-epoch checkpoint on SIGTERM")
    check("stopped by signal 15" in slurp(os.path.join(out, "logs", f"slurm-{job}_{k}.log")),
          "its task says it was stopped by a signal")
    for i, pid in enumerate(ids):
        if i != k:
            check(os.path.exists(os.path.join(out, "runs", pid, "DONE")), f"task {i} finished")

    r = wd("sweep", "--grid", grid, "--out", out, "--collect")
    check(r.returncode == 5 and f"{target} (interrupted)" in r.stderr,
          f"--collect refuses while {target} is unfinished (exit {r.returncode})")

    # Resubmission through the helper: only the cancelled task, then the collect job.
    env = cluster.env()
    env.pop("WDLAB", None)
    r = subprocess.run([submit], capture_output=True, text=True, env=env, timeout=30)
    print(r.stdout, r.stderr, flush=True)
    m = re.search(r"array job (\d+): tasks (\S+)", r.stdout)
    c = re.search(r"collect job (\d+)", r.stdout)
    check(r.returncode == 0 and m is not None and c is not None, "the submit helper submitted two jobs")
    check(m.group(2) == str(k), f"it resubmitted only task {k} (got {m.group(2)})")
    collect = c.group(1)
    wait_for(lambda: not cluster.run("squeue", "-h", "-o", "%i", check=False).stdout.strip(), 90,
             "the resubmitted task and the collect job to end")
    show = cluster.run("scontrol", "show", "job", collect).stdout
    check("JobState=COMPLETED" in show and "ExitCode=0:0" in show, f"collect job {collect} completed")
    check(f"Partition={slurm_cluster.PARTITION}" in show and "Account=wdlab-test" in show and "TimeLimit=00:05:00" in show,
          "the collect job has the same passthrough options")
    check(f"best {ms_best_id(out)}" in slurp(os.path.join(out, "logs", f"slurm-collect-{collect}.log")),
          "the collect job's log names the best point")
    check(f"resuming from" in slurp(log) and f"(epoch 0, batch {PAUSE_STEP + 1}, iteration {PAUSE_STEP + 1})" in slurp(log),
          f"the resubmitted task resumed from its checkpoint (epoch 0, batch {PAUSE_STEP + 1})")

    ml = json.loads(slurp(os.path.join(local, "manifest.json")))
    ms = json.loads(slurp(os.path.join(out, "manifest.json")))
    check(ms.get("best", {}).get("overrides", {}).get("lr") == 0.05, "the best point is lr 0.05 (known)")
    check(ms.get("best") == ml.get("best"), f"the selected point equals the local sweep's: {ms.get('best')}")
    check(ms.get("final", {}).get("id") == ml["final"]["id"], "the final run's id equals the local sweep's")
    for i, pid in enumerate(ids):
        a, b = final_row(os.path.join(out, "runs", pid)), final_row(os.path.join(local, "runs", pid))
        check(a is not None and a == b, f"point {i} ({pid}): final metrics equal the local sweep's")
    check(final_row(os.path.join(local, "runs", ids[0])) != final_row(os.path.join(local, "runs", ids[3])),
          "control: two different points' metrics differ")
    fid = ms["final"]["id"]
    a, b = final_row(os.path.join(out, fid)), final_row(os.path.join(local, fid))
    check(a is not None and a == b, f"the final run {fid} equals the local sweep's: test_acc {a and a.get('test_acc')}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
