#!/usr/bin/python3
"""Figures of `wdlab report` (PNG and SVG), from DIR/report-data.json written by the report.

    /usr/bin/python3 scripts/plot_report.py --data REPORT/report-data.json --out REPORT/figures

One figure of each kind per group of runs (a suite's experiment), where the runs logged what it
needs: test accuracy per epoch (paper Figs. 1/2/4/6/8), the effective learning rate of the first
layer (Fig. 3, log y), K-FAC Gauss-Newton norm vs Jacobian norm vs generalization gap with
Pearson correlations (Fig. 5, log axes), Fisher and Gauss-Newton trace norms (Fig. 7, log y), and
training loss per epoch and per second (Fig. 9, log y). Writes figures.json (file, title, caption)
for the report. Needs Debian's python3-matplotlib (`/usr/bin/python3`)."""
import argparse
import json
import math
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 7,
                     "figure.dpi": 110})


def series(run, key):
    col = run["metrics"].get(key)
    if not col:
        return None
    return [math.nan if v is None else float(v) for v in col]


def epochs(run):
    e = series(run, "epoch")
    return e if e else list(range(1, len(next(iter(run["metrics"].values()), [])) + 1))


def first_key(run, prefix):
    for k in run["metrics"]:
        if k.startswith(prefix):
            return k
    return None


def label(run):
    return f'{run["name"]} ({run["reg"]})'


def pearson(x, y):
    pts = [(a, b) for a, b in zip(x, y) if math.isfinite(a) and math.isfinite(b)]
    n = len(pts)
    if n < 3:
        return math.nan
    mx = sum(a for a, _ in pts) / n
    my = sum(b for _, b in pts) / n
    sxy = sum((a - mx) * (b - my) for a, b in pts)
    sxx = sum((a - mx) ** 2 for a, _ in pts)
    syy = sum((b - my) ** 2 for _, b in pts)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else math.nan


def slug(s):
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-") or "runs"


class Out:
    def __init__(self, out_dir):
        self.dir = out_dir
        self.figures = []
        self.notes = []

    def save(self, fig, name, title, caption):
        png, svg = name + ".png", name + ".svg"
        fig.savefig(os.path.join(self.dir, png), bbox_inches="tight")
        fig.savefig(os.path.join(self.dir, svg), bbox_inches="tight")
        plt.close(fig)
        self.figures.append({"png": png, "svg": svg, "title": title, "caption": caption})


def epoch_axis(ax):
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def legend(ax):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", frameon=False)


def fig_accuracy(out, group, runs):
    rs = [r for r in runs if series(r, "test_acc")]
    if not rs:
        return
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for r in rs:
        ax.plot(epochs(r), [100 * v for v in series(r, "test_acc")], marker="o", ms=2.5, label=label(r))
    epoch_axis(ax)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{group}: test accuracy")
    legend(ax)
    out.save(fig, f"accuracy-{slug(group)}", f"{group}: test accuracy",
             "test accuracy per epoch (paper Figs. 1/2/4/6/8)")


def fig_elr(out, group, runs):
    rs = [r for r in runs if r["bn"] and first_key(r, "elr.")]
    if not rs:
        return
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    layer = None
    for r in rs:
        k = first_key(r, "elr.")
        layer = k[4:]
        ax.plot(epochs(r), series(r, k), marker="o", ms=2.5, label=label(r))
    ax.set_yscale("log")
    epoch_axis(ax)
    ax.set_ylabel(r"effective learning rate $\eta/\|\theta_l\|^2$")
    ax.set_title(f"{group}: effective learning rate of {layer}")
    legend(ax)
    out.save(fig, f"elr-{slug(group)}", f"{group}: effective learning rate",
             f"η/‖θ‖² of the first BN layer ({layer}) per epoch, log scale (paper Fig. 3)")


def fig_gn_jacobian(out, group, runs):
    pts = []
    for r in runs:
        g = series(r, "kfac_gn_norm")
        j = series(r, "jac_norm") or series(r, "jac_norm_est")
        if not g or not j:
            continue
        gap = series(r, "gen_gap")
        if not gap:
            tl, tr = series(r, "test_loss"), series(r, "train_loss")
            gap = [a - b for a, b in zip(tl, tr)] if tl and tr else [math.nan]
        pts.append((r, g[-1], j[-1], gap[-1]))
    pts = [p for p in pts if p[1] > 0 and p[2] > 0]
    if len(pts) < 2:
        return
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), constrained_layout=True)
    lg = [math.log10(p[1]) for p in pts]
    lj = [math.log10(p[2]) for p in pts]
    gaps = [p[3] for p in pts]
    combos = [(axes[0], [p[2] for p in pts], [p[1] for p in pts], r"$\|J_x\|_F^2$", r"K-FAC GN norm $\theta^T G_{KFAC} \theta$",
               pearson(lj, lg), True),
              (axes[1], [p[2] for p in pts], gaps, r"$\|J_x\|_F^2$", "generalization gap (test − train loss)",
               pearson(lj, gaps), False),
              (axes[2], [p[1] for p in pts], gaps, r"K-FAC GN norm", "generalization gap (test − train loss)",
               pearson(lg, gaps), False)]
    for ax, x, y, xl, yl, r, logy in combos:
        for (run, *_), xi, yi in zip(pts, x, y):
            ax.scatter([xi], [yi], s=22, label=f'{run["network"]} {run["optimizer"]} {run["reg"]}')
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(f"Pearson r = {r:.3f} (log norms), n = {len(pts)}")
    axes[0].legend(loc="best", fontsize=6, frameon=True, framealpha=0.7)
    fig.suptitle(f"{group}: K-FAC GN norm, Jacobian norm and generalization gap at the end of training")
    out.save(fig, f"gn-jacobian-{slug(group)}", f"{group}: GN norm vs Jacobian norm vs gap",
             "final-epoch values per network, log axes for the norms, Pearson r on log norms (paper Fig. 5)")


def fig_traces(out, group, runs):
    rs = [r for r in runs if first_key(r, "fisher_trace.") or first_key(r, "gn_trace.")]
    if not rs:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    layer = None
    for i, r in enumerate(rs):
        color = f"C{i % 10}"
        fk = first_key(r, "fisher_trace.")
        layer = (fk or first_key(r, "gn_trace."))
        layer = layer.split(".", 1)[1]
        for key, style, what in ((f"fisher_trace.{layer}", "-", "Fisher"), (f"gn_trace.{layer}", "--", "GN")):
            s = series(r, key)
            if s:
                ax.plot(epochs(r), s, style, color=color, marker="o" if what == "Fisher" else "s", ms=2.5,
                        label=f"{what}: {label(r)}")
    ax.set_yscale("log")
    epoch_axis(ax)
    ax.set_ylabel(r"trace norm at normalized weights $\|C(\hat\theta_l)\|_*$")
    ax.set_title(f"{group}: Fisher vs Gauss-Newton trace, {layer}")
    legend(ax)
    out.save(fig, f"traces-{slug(group)}", f"{group}: Fisher and GN trace norms",
             f"trace norms of the K-FAC block of {layer} at normalized weights, log scale (paper Fig. 7)")


def fig_loss(out, group, runs):
    rs = [r for r in runs if series(r, "train_loss")]
    if not rs:
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in rs:
        loss = series(r, "train_loss")
        a1.plot(epochs(r), loss, marker="o", ms=2.5, label=label(r))
        secs = series(r, "epoch_seconds")
        if secs:
            t, acc = [], 0.0
            for s in secs:
                acc += 0 if math.isnan(s) else s
                t.append(acc)
            a2.plot(t, loss, marker="o", ms=2.5, label=label(r))
    for ax in (a1, a2):
        ax.set_yscale("log")
        ax.set_ylabel("training loss (epoch mean; epoch 0: eval mode)")
    epoch_axis(a1)
    a2.set_xlabel("wall-clock time (s)")
    a1.set_title(f"{group}: training loss per epoch")
    a2.set_title("per second")
    legend(a1)
    out.save(fig, f"loss-{slug(group)}", f"{group}: training loss",
             "training loss per epoch and per second of training, log scale (paper Fig. 9)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(a.data) as f:
        data = json.load(f)
    os.makedirs(a.out, exist_ok=True)
    out = Out(a.out)
    groups = {}
    for r in data["runs"]:
        groups.setdefault(r["group"], []).append(r)
    for group, runs in groups.items():
        for fn in (fig_accuracy, fig_elr, fig_gn_jacobian, fig_traces, fig_loss):
            try:
                fn(out, group, runs)
            except Exception as e:  # one bad figure must not lose the others
                out.notes.append(f"{fn.__name__} for {group} failed: {type(e).__name__}: {e}")
                print(out.notes[-1], file=sys.stderr)
    tmp = os.path.join(a.out, ".figures.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"figures": out.figures, "notes": out.notes}, f, indent=1)
    os.replace(tmp, os.path.join(a.out, "figures.json"))
    print(f"wrote {len(out.figures)} figures to {a.out}")


if __name__ == "__main__":
    main()
