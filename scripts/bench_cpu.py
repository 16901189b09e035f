#!/usr/bin/env python3
"""wdlab's CPU engine beside PyTorch CPU, same models, batch, threads and BN settings.

Runs, alternating in --rounds rounds so that a noisy shared machine slows both alike:
  wdlab bench --precision float|double             the MLP 784-1000-1000-10 (SGD, Adam, K-FAC-F, K-FAC-G;
                                                   its GEMMs alone and the BLAS GEMM rate in the same run)
  wdlab bench --model convnet-bn --batches B       the BN convnet of configs/laptop/convnet-bn-*.json
  scripts/bench_pytorch.py --device cpu            the same two models in PyTorch eager (SGD, Adam)
and prints the medians over rounds of each side's per-round median step, and the ratios
wdlab / PyTorch. Debian's python3-torch is the only extra package (apt-get install -y python3-torch);
no test depends on it.

  /usr/bin/python3 scripts/bench_cpu.py --wdlab build/bin/wdlab --threads 2 [--rounds 3] [--out FILE]
      [--before OTHER/bin/wdlab] [--no-pytorch]

--before times a second wdlab binary (e.g. a build of an earlier commit) in the same rounds, right
after the first one, and adds its medians and the ratio wdlab / before: a before/after comparison
that a loaded machine slows alike.

Exit: 0 done; 2 bad usage; 77 torch not importable.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wdlab", required=True, help="the wdlab binary")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both sides")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=100, help="MLP steps per optimizer (>= 100 covers one K-FAC T_inv)")
    ap.add_argument("--conv-steps", type=int, default=20)
    ap.add_argument("--out", help="write the JSON here too")
    ap.add_argument("--before", help="a second wdlab binary timed in the same rounds (before/after)")
    ap.add_argument("--no-pytorch", action="store_true", help="time wdlab (and --before) only")
    a = ap.parse_args()
    if a.threads < 1 or a.rounds < 1:
        ap.error("--threads and --rounds must be >= 1")
    if not a.no_pytorch:
        try:
            import torch  # noqa: F401  (only to skip cleanly where it is missing)
        except ImportError as e:
            print(f"bench_cpu: torch is not importable ({e}); apt-get install -y python3-torch", file=sys.stderr)
            return 77
    t = str(a.threads)
    samples = {}  # (side, model, precision, optimizer) -> [per-round median]
    extra = {"mlp_sgd_over_gemms": [], "blas_gemm_gflops": []}

    def add(key, v):
        samples.setdefault(key, []).append(v)

    for r in range(a.rounds):
        print(f"bench_cpu: round {r + 1}/{a.rounds}", file=sys.stderr)
        for side, binary in [("wdlab", a.wdlab)] + ([("before", a.before)] if a.before else []):
            for prec in ("float", "double"):
                j = run_json([binary, "bench", "--threads", t, "--precision", prec, "--batch", str(a.batch),
                              "--steps", str(a.steps), "--format", "json"])
                for row in j["results"]:
                    add((side, "mlp", prec, row["optimizer"]), row["mean_step_s"])
                g = j["gemm"][prec]
                if prec == "float":
                    extra.setdefault(side + "_sgd_over_gemms", []).append(g["sgd_step_over_gemms"])
                if side == "wdlab":
                    extra["blas_gemm_gflops"].append((prec, g["eigen_gemm_gflops"]))
                    sgd = [row for row in j["results"] if row["optimizer"] == "sgd"]
                    if sgd:  # the SGD step's GEMM FLOPs over its time, as a fraction of the 1024^3 rate
                        extra.setdefault("sgd_gemm_fraction_" + prec, []).append(
                            sgd[0]["step_gflops"] / g["eigen_gemm_gflops"])
            j = run_json([binary, "bench", "--threads", t, "--model", "convnet-bn", "--batches", str(a.batch),
                          "--steps", str(a.conv_steps), "--precision", "float", "--format", "json"])
            for row in j["results"]:
                if "mean_step_s" in row:
                    add((side, "convnet-bn", "float", row["optimizer"]), row["mean_step_s"])
        if a.no_pytorch:
            continue
        j = run_json(["/usr/bin/python3", os.path.join(HERE, "bench_pytorch.py"), "--device", "cpu", "--threads", t,
                      "--models", "mlp,convnet-bn", "--batches", str(a.batch), "--optimizers", "sgd,adam",
                      "--steps", str(a.conv_steps), "--warmup", "3"])
        for row in j["results"]:
            add(("pytorch", row["model"], "float", row["optimizer"]), row["mean_step_s"])

    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"\nthreads {a.threads}, batch {a.batch}, {a.rounds} rounds: median over rounds of the mean step (ms)")
    print(f"{'model':<11} {'prec':<7} {'optimizer':<8} {'wdlab':>10} {'pytorch':>10} {'wdlab/pt':>9} {'/sgd':>6}"
          + (f" {'before':>10} {'wdlab/before':>12}" if a.before else ""))
    rows = []
    for (side, model, prec, opt), v in sorted(med.items()):
        if side != "wdlab":
            continue
        pt = med.get(("pytorch", model, prec, opt.replace("_", "-")))
        sgd = med.get(("wdlab", model, prec, "sgd"))
        ratio = v / pt if pt else None
        before = med.get(("before", model, prec, opt))
        rows.append({"model": model, "precision": prec, "optimizer": opt, "wdlab_s": v, "pytorch_s": pt,
                     "wdlab_over_pytorch": ratio, "over_sgd": v / sgd if sgd else None,
                     "before_s": before, "wdlab_over_before": v / before if before else None})
        print(f"{model:<11} {prec:<7} {opt:<8} {v * 1e3:10.2f} {pt * 1e3 if pt else float('nan'):10.2f} "
              f"{ratio if ratio else float('nan'):9.2f} {v / sgd if sgd else float('nan'):6.2f}"
              + (f" {before * 1e3:10.2f} {v / before:12.2f}" if before else ""))
    sgd_gemm = statistics.median(extra["wdlab_sgd_over_gemms"])
    print(f"MLP float SGD step / its GEMMs alone: {sgd_gemm:.2f}"
          + (f" (before: {statistics.median(extra['before_sgd_over_gemms']):.2f})" if a.before else ""))
    for prec in ("float", "double"):
        frac = extra.get("sgd_gemm_fraction_" + prec)
        if frac:
            print(f"MLP {prec} SGD step: its GEMM FLOPs / step time = {100 * statistics.median(frac):.0f} % "
                  f"of the 1024^3 GEMM rate")
    for prec in ("float", "double"):
        rates = [g for p, g in extra["blas_gemm_gflops"] if p == prec]
        print(f"GEMM 1024^3 {prec}: {statistics.median(rates):.1f} GFLOP/s")
    result = {"threads": a.threads, "batch": a.batch, "rounds": a.rounds, "rows": rows,
              "mlp_sgd_over_gemms": sgd_gemm}
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
