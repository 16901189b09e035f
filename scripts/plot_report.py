#!/usr/bin/python3
"""Figures of `wdlab report` (PNG and SVG), from DIR/report-data.json written by the report.

    /usr/bin/python3 scripts/plot_report.py --data REPORT/report-data.json --out REPORT/figures

One figure per mechanism and group of runs (a suite's experiment), with every seed (thin lines, the
geometric mean over seeds bold): I, the effective learning rate per layer without and with WD and
the angular update against its equilibrium prediction (dashed); II, WD's Jacobian factor per
optimizer with one point per seed; III, the effective damping per layer for none / wd / wd on the
non-BN layers only, and the Fisher and GN trace norms. A panel whose metric no run logged is left
out and a note says so. Then, where the runs logged what it needs: test accuracy per epoch (paper Figs. 1/2/4/6/8), the effective learning rate of the first
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


def fig_name(kind, group, suffix=None):
    """The file name of a figure: kind-group[-suffix], the kind not repeated where the experiment's name
    already starts with it (mech1-elr-0, not mech1-mech1-elr-0; mech1-exp-0 for an experiment "exp")."""
    g = slug(group)
    base = g if g == kind or g.startswith(kind + "-") else f"{kind}-{g}"
    return base if suffix is None else f"{base}-{suffix}"


class Out:
    def __init__(self, out_dir):
        self.dir = out_dir
        self.figures = []
        self.notes = []

    def save(self, fig, name, title, caption):
        taken = {f["png"] for f in self.figures}
        base, k = name, 2
        while name + ".png" in taken:  # fig_name's shortening may meet another experiment's name
            name, k = f"{base}-{k}", k + 1
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
    out.save(fig, fig_name("accuracy", group), f"{group}: test accuracy",
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
    out.save(fig, fig_name("elr", group), f"{group}: effective learning rate",
             f"η/‖θ‖² of the first BN layer ({layer}) per epoch, log scale (paper Fig. 3)")


def fig_gn_jacobian(out, group, runs):
    """II (paper Fig. 5): K-FAC GN norm vs ‖J‖² (log-log) over the group's runs (networks and seeds),
    and each against the generalization gap where the runs logged one."""
    pts = []
    for r in runs:
        g = last_value(r, "kfac_gn_norm")
        j = jac_last(r)
        if not (g > 0 and j > 0):
            continue
        gap = last_value(r, "gen_gap")
        if not math.isfinite(gap):
            gap = last_value(r, "test_loss") - last_value(r, "train_loss")
        pts.append((r, g, j, gap))
    if len(pts) < 2:
        return False
    have_gap = sum(1 for p in pts if math.isfinite(p[3])) >= 2
    fig, axes = plt.subplots(1, 3 if have_gap else 1, figsize=(13 if have_gap else 5.5, 4.2), squeeze=False,
                             constrained_layout=True)
    axes = axes[0]
    lg = [math.log10(p[1]) for p in pts]
    lj = [math.log10(p[2]) for p in pts]
    gaps = [p[3] for p in pts]
    combos = [(axes[0], [p[2] for p in pts], [p[1] for p in pts], r"$\|J_x\|_F^2$",
               r"K-FAC GN norm $\theta^T G_{KFAC} \theta$", pearson(lj, lg), True)]
    if have_gap:
        combos += [(axes[1], [p[2] for p in pts], gaps, r"$\|J_x\|_F^2$", "generalization gap (test − train loss)",
                    pearson(lj, gaps), False),
                   (axes[2], [p[1] for p in pts], gaps, r"K-FAC GN norm", "generalization gap (test − train loss)",
                    pearson(lg, gaps), False)]
    else:
        out.notes.append(f"{group}: no run logged gen_gap (nor test and train loss): the GN-vs-gap and "
                         "Jacobian-vs-gap panels are left out")
    colors = {}
    for ax, x, y, xl, yl, r, logy in combos:
        for (run, *_), xi, yi in zip(pts, x, y):
            if not math.isfinite(yi):
                continue
            key = f'{run["network"]} {run["optimizer"]} {run["reg"]}'
            first = key not in colors
            colors.setdefault(key, f"C{len(colors) % 10}")
            ax.scatter([xi], [yi], s=22, color=colors[key], label=key if first or ax is not axes[0] else None)
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(f"Pearson r = {r:.3f} (log norms), n = {len(pts)}")
    handles, labels = axes[0].get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    axes[0].legend(uniq.values(), uniq.keys(), loc="best", fontsize=6, frameon=True, framealpha=0.7)
    fig.suptitle(f"{group}: K-FAC GN norm, Jacobian norm and generalization gap at the end of training "
                 f"({len({p[0].get('seed') for p in pts})} seed(s), one point per run)")
    out.save(fig, fig_name("gn-jacobian", group), f"{group}: mechanism II (GN norm vs Jacobian norm)",
             "final-epoch values per network and seed, log axes for the norms, Pearson r on log norms (paper Fig. 5)")
    return True


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
    out.save(fig, fig_name("traces", group), f"{group}: Fisher and GN trace norms",
             f"trace norms of the K-FAC block of {layer} at normalized weights, log scale (paper Fig. 7)")


# --- One figure per mechanism, all seeds: thin lines per seed, the mean over seeds bold. -----------
# A run's family (report_runs.hpp: group, data, network, BN, augmentation, optimizer, batch) and
# regularization class pair it with the same setting's other seeds. Lines are drawn against the
# epoch; the bold line is the geometric mean over seeds at each epoch (the axes are logarithmic).
NON_BN_ONLY = ("wd-fc", "wd-list")
REG_COLOR = {"none": "C0", "wd": "C1", "wd-fc": "C2", "wd-list": "C2"}


def by_family(runs, keep):
    """{family: {reg: [runs of its seeds]}} for the runs keep(run) accepts."""
    fams = {}
    for r in runs:
        if keep(r):
            fams.setdefault(r.get("family", r["name"]), {}).setdefault(r["reg"], []).append(r)
    return fams


def gmean_curve(runs, key):
    """Epochs and the geometric mean over runs at each epoch where every run has a positive value."""
    per_epoch = {}
    for r in runs:
        for e, v in zip(epochs(r), series(r, key) or []):
            if math.isfinite(v) and v > 0:
                per_epoch.setdefault(e, []).append(v)
    xs = sorted(e for e, vs in per_epoch.items() if len(vs) == len(runs))
    return xs, [math.exp(sum(math.log(v) for v in per_epoch[e]) / len(runs)) for e in xs]


def seeds_and_mean(ax, runs, key, color, name, style="-"):
    """Thin line per seed, bold geometric mean; returns whether anything was drawn."""
    drawn = False
    for r in runs:
        s = series(r, key)
        if s and any(math.isfinite(v) for v in s):
            ax.plot(epochs(r), s, style, color=color, lw=0.7, alpha=0.45)
            drawn = True
    if drawn:
        xs, ys = gmean_curve(runs, key)
        seeds = len({r.get("seed") for r in runs})
        ax.plot(xs, ys, style, color=color, lw=2.2, label=f"{name} (mean of {seeds} seed{'s' if seeds != 1 else ''})")
    return drawn


def layers_with(runs, prefix, limit=4):
    """The layers (key suffixes) of prefix.* keys, in logged order, at most `limit`."""
    out = []
    for r in runs:
        for k in r["metrics"]:
            if k.startswith(prefix) and k[len(prefix):] not in out:
                out.append(k[len(prefix):])
    return out[:limit]


def last_value(run, key):
    s = series(run, key) or []
    for v in reversed(s):
        if math.isfinite(v):
            return v
    return math.nan


def fig_mech1(out, group, runs):
    """I (paper Fig. 3): ELR per layer, none vs wd; rot and its prediction (dashed) in the wd run."""
    fams = by_family(runs, lambda r: r["bn"] and r["optimizer"] == "sgd" and r["reg"] in ("none", "wd"))
    drawn = False
    for fi, (fam, regs) in enumerate(sorted(fams.items())):
        layers = layers_with(regs.get("none", []) + regs.get("wd", []), "elr.")
        if not layers:
            out.notes.append(f"{group}: mechanism I figure skipped: no BN + SGD run logged elr.*")
            continue
        rot_runs = [r for r in regs.get("wd", []) if first_key(r, "rot.")]
        rows = 2 if rot_runs else 1
        fig, axes = plt.subplots(rows, len(layers), figsize=(3.2 * len(layers), 2.9 * rows), squeeze=False,
                                 constrained_layout=True)
        for li, layer in enumerate(layers):
            ax = axes[0][li]
            for reg in ("none", "wd"):
                seeds_and_mean(ax, regs.get(reg, []), f"elr.{layer}", REG_COLOR[reg], reg)
            ax.set_yscale("log")
            epoch_axis(ax)
            ax.set_title(f"η/‖θ‖², {layer}")
            legend(ax)
            if rot_runs:
                ax = axes[1][li]
                seeds_and_mean(ax, rot_runs, f"rot.{layer}", REG_COLOR["wd"], "∠ per step, wd")
                preds = [last_value(r, f"rot_pred.{layer}") for r in rot_runs]
                preds = [p for p in preds if math.isfinite(p)]
                if preds:
                    ax.axhline(sum(preds) / len(preds), ls="--", color="k", lw=1.2, label="predicted √(2ηλ/(1+α))")
                else:
                    ax.text(0.5, 0.5, "no prediction (rot_pred null)", transform=ax.transAxes, ha="center", fontsize=7)
                ax.set_yscale("log")
                epoch_axis(ax)
                ax.set_title(f"angular update, {layer}")
                legend(ax)
        if not rot_runs:
            out.notes.append(f"{group}: mechanism I: no wd run logged rot.* (metric group rotation); "
                             "the angular-update panels are left out")
        name = regs[next(iter(regs))][0]
        fig.suptitle(f"{group}: mechanism I, {name['network']} BN, SGD")
        out.save(fig, fig_name("mech1", group, fi), f"{group}: mechanism I (ELR and rotation)",
                 "effective learning rate η/‖θ_l‖² per layer, none vs wd (paper Fig. 3); angular update per step in "
                 "the wd run with its equilibrium prediction dashed (MATH.md §16); thin: one seed, bold: geometric "
                 "mean over seeds")
        drawn = True
    return drawn


def jac_last(r):
    v = last_value(r, "jac_norm")
    return v if math.isfinite(v) else last_value(r, "jac_norm_est")


def fig_mech2(out, group, runs):
    """II (paper Table 2): WD's Jacobian factor per optimizer, one point per seed, geomean bar."""
    fams = by_family(runs, lambda r: not r["bn"] and r["optimizer"] in ("sgd", "kfac-g"))
    factors = {}
    for fam, regs in fams.items():
        wd = {r.get("seed"): r for r in regs.get("wd", [])}
        for r in regs.get("none", []):
            if r.get("seed") in wd:
                f = jac_last(r) / jac_last(wd[r.get("seed")])
                if math.isfinite(f) and f > 0:
                    factors.setdefault((r["network"], r["optimizer"]), []).append(f)
    if not factors:
        if fams:
            out.notes.append(f"{group}: mechanism II factor figure skipped: no none/wd pair of the same seed "
                             "with jac_norm")
        return False
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    labels = sorted(factors)
    for i, k in enumerate(labels):
        fs = factors[k]
        ax.scatter([i] * len(fs), fs, s=22, color="C0", zorder=3, label="one seed" if i == 0 else None)
        g = math.exp(sum(math.log(v) for v in fs) / len(fs))
        ax.hlines(g, i - 0.3, i + 0.3, color="k", lw=2.2, label="geometric mean" if i == 0 else None)
    ax.set_xticks(range(len(labels)), [f"{n}\n{o}" for n, o in labels], fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("‖J_x‖²_F without WD / with WD")
    ax.set_title(f"{group}: WD's Jacobian factor per optimizer")
    legend(ax)
    out.save(fig, fig_name("mech2-jacobian", group), f"{group}: mechanism II (Jacobian factor)",
             "‖J_x‖²_F(none)/‖J_x‖²_F(wd) at the end of training per optimizer, one point per seed, bar: "
             "geometric mean (paper Table 2)")
    return True


def fig_mech3(out, group, runs):
    """III (paper Eq. 16, Fig. 7): effective damping per layer for none / wd / wd on non-BN layers;
    Fisher and GN trace norms of the first layer."""
    regs_wanted = ("none", "wd") + NON_BN_ONLY
    fams = by_family(runs, lambda r: r["bn"] and r["optimizer"] == "kfac-f" and r["reg"] in regs_wanted)
    drawn = False
    for fi, (fam, regs) in enumerate(sorted(fams.items())):
        allr = [r for rs in regs.values() for r in rs]
        layers = layers_with(allr, "damping_eff.")
        tlayer = next((k.split(".", 1)[1] for r in allr for k in r["metrics"] if k.startswith("fisher_trace.")), None)
        if not layers and not tlayer:
            out.notes.append(f"{group}: mechanism III figure skipped: no BN + K-FAC-F run logged damping_eff.* "
                             "or fisher_trace.*")
            continue
        cols = max(len(layers), 1) + (1 if tlayer else 0)
        frac = [l for l in layers if any(series(r, f"damping_frac.{l}") for r in allr)]
        rows = 2 if frac else 1
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.1 * rows), squeeze=False, constrained_layout=True)
        for li, layer in enumerate(frac):
            ax = axes[1][li]
            for reg in regs_wanted:
                for i, r in enumerate(regs.get(reg, [])):
                    s = series(r, f"damping_frac.{layer}")
                    if s:
                        ax.plot(epochs(r), s, color=REG_COLOR[reg], lw=1.0, label=reg if i == 0 else None)
            epoch_axis(ax)
            ax.set_title(f"damping fraction, {layer}")
            legend(ax)
        if rows == 2:
            for ax in axes[1][len(frac):]:
                ax.axis("off")
        for li, layer in enumerate(layers):
            ax = axes[0][li]
            for reg in regs_wanted:
                if reg in regs:
                    name = "wd, non-BN layers only" if reg in NON_BN_ONLY else reg
                    seeds_and_mean(ax, regs[reg], f"damping_eff.{layer}", REG_COLOR[reg], name)
            ax.set_yscale("log")
            epoch_axis(ax)
            ax.set_title(f"λ‖θ‖², {layer}")
            legend(ax)
        if not layers:
            axes[0][0].text(0.5, 0.5, "no damping_eff.* logged", transform=axes[0][0].transAxes, ha="center")
            out.notes.append(f"{group}: mechanism III: no run logged damping_eff.* (metric group damping); "
                             "that panel is empty")
        if tlayer:
            ax = axes[0][-1]
            for reg in regs_wanted:
                if reg in regs:
                    seeds_and_mean(ax, regs[reg], f"fisher_trace.{tlayer}", REG_COLOR[reg], f"Fisher, {reg}")
                    seeds_and_mean(ax, regs[reg], f"gn_trace.{tlayer}", REG_COLOR[reg], f"GN, {reg}", style="--")
            ax.set_yscale("log")
            epoch_axis(ax)
            ax.set_title(f"trace norms at θ̂, {tlayer}")
            legend(ax)
        else:
            out.notes.append(f"{group}: mechanism III: no run logged fisher_trace.* (metric group trace); "
                             "the trace panel is left out")
        name = allr[0]
        fig.suptitle(f"{group}: mechanism III, {name['network']} BN, K-FAC-F")
        out.save(fig, fig_name("mech3", group, fi), f"{group}: mechanism III (effective damping, traces)",
                 "effective damping λ‖θ_l‖² per layer for none / wd / wd on the non-BN layers only (paper Eq. 16, "
                 "Sec. 4.3), its damping fraction where logged (one line per seed); Fisher (solid) and Gauss-Newton "
                 "(dashed) trace norms at normalized weights (paper Fig. 7); thin: one seed, bold: geometric mean "
                 "over seeds")
        drawn = True
    return drawn


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
    out.save(fig, fig_name("loss", group), f"{group}: training loss",
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
        drawn = {}
        # The mechanism figures first; the older per-run ELR and trace figures only where no
        # mechanism figure covers the group.
        for fn in (fig_mech1, fig_mech2, fig_mech3, fig_accuracy, fig_gn_jacobian, fig_elr, fig_traces, fig_loss):
            if (fn is fig_elr and drawn.get(fig_mech1)) or (fn is fig_traces and drawn.get(fig_mech3)):
                continue
            try:
                drawn[fn] = fn(out, group, runs)
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
