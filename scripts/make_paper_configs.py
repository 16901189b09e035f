#!/usr/bin/env python3
"""Writes configs/paper/: the paper's experiments at full scale (CIFAR-10/100, VGG16, ResNet32x4, GPU)
as wdlab configs, grouped by experiment (configs/paper/<experiment>/*.json), the sweep grids of the
hyper-parameter search (configs/paper/grids/), and the suite (configs/paper/suite.json) that
`wdlab reproduce --suite paper [--only NAME]` runs.

Hyper-parameters follow MATH.md section 10: the official configs' learning rate, decay factor,
damping and KL clip for every Table 1 cell (all 64 cells have an official config), momentum 0.9,
batch 128, Glorot-uniform init, biases on, BN without gamma/beta; SGD/Adam 200 epochs with the
learning rate x0.1 every 60 epochs, K-FAC 100 epochs with x0.1 every 40 (the paper's epochs; the
official configs count iterations: 16000 = 40.9 epochs, 23460/23500 = 60 epochs; CIFAR-100 ResNet32
SGD decays every 100000 iterations, i.e. never in 200 epochs, unlike the paper: we follow the paper).
K-FAC: T_cov 10, T_inv 100, EMA 0.95, damping 1e-3 (1e-2 for VGG16 K-FAC-G without BN), full-pass
factor initialization (roger_init), KL clipping only without BN, and for K-FAC-G the official
N(z, 0.5 I) surrogate (gn_probe_variance 2, i.e. 2G; MATH.md 9.4), which the official learning
rates were tuned with. The official SGD adds its decay to the gradient before momentum, so SGD's
"WD" runs use regularization l2 with the official coefficient. The runs train on all 50k images
(validation 0), as the official code; the grids (validation 5000) are the paper's search (App. A):
`wdlab sweep` picks the best point on the held-out 5k and retrains it on train+validation.
"""
import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "configs", "paper"))

# (dataset, model, optimizer, bn, aug) -> {"none": (lr, extra), "wd": (lr, beta, extra)}; extra: kfac
# damping / kl_clip overrides. From MATH.md section 10's table of official configs.
OFFICIAL = {}


def put(ds, model, opt, bn, aug, none_lr, wd_lr, beta, kl_none=0.0, kl_wd=0.0, damping=1e-3):
    OFFICIAL[(ds, model, opt, bn, aug)] = {
        "none": (none_lr, {"kl_clip": kl_none, "damping": damping}),
        "wd": (wd_lr, beta, {"kl_clip": kl_wd, "damping": damping}),
    }


for ds in ("cifar10",):
    # ResNet32x4
    put(ds, "resnet32", "sgd", False, False, 3e-3, 3e-3, 1e-3)
    put(ds, "resnet32", "sgd", True, False, 3e-2, 3e-2, 3e-3)
    put(ds, "resnet32", "sgd", True, True, 3e-2, 1e-2, 3e-3)
    put(ds, "resnet32", "adam", False, False, 3e-4, 3e-4, 1.0)
    put(ds, "resnet32", "adam", True, False, 1e-3, 1e-3, 1.0)
    put(ds, "resnet32", "adam", True, True, 1e-3, 1e-3, 0.3)
    put(ds, "resnet32", "kfac-f", False, False, 3e-4, 1e-3, 1.0, kl_none=1e-5, kl_wd=1e-5)
    put(ds, "resnet32", "kfac-f", True, False, 1e-3, 1e-3, 1.0)
    put(ds, "resnet32", "kfac-f", True, True, 1e-3, 3e-4, 1.0)
    put(ds, "resnet32", "kfac-g", False, False, 1e-2, 3e-2, 3e-2, kl_none=1e-4, kl_wd=1e-4)
    put(ds, "resnet32", "kfac-g", True, False, 3e-2, 3e-2, 1e-2)
    put(ds, "resnet32", "kfac-g", True, True, 1e-2, 3e-2, 3e-2)
    # VGG16
    put(ds, "vgg16", "sgd", False, False, 3e-2, 3e-2, 3e-4)
    put(ds, "vgg16", "sgd", True, False, 3e-2, 1e-1, 1e-3)
    put(ds, "vgg16", "sgd", True, True, 1e-2, 1e-1, 1e-3)
    put(ds, "vgg16", "adam", False, False, 3e-4, 3e-4, 0.3)
    put(ds, "vgg16", "adam", True, False, 1e-3, 1e-3, 0.3)
    put(ds, "vgg16", "adam", True, True, 1e-3, 3e-4, 1.0)
    put(ds, "vgg16", "kfac-f", False, False, 3e-4, 1e-3, 1.0, kl_none=1e-5, kl_wd=1e-5)
    put(ds, "vgg16", "kfac-f", True, False, 1e-3, 3e-3, 1.0)
    put(ds, "vgg16", "kfac-f", True, True, 1e-3, 1e-3, 0.3)
    put(ds, "vgg16", "kfac-g", False, False, 3e-2, 3e-2, 3e-2, kl_none=1e-4, kl_wd=1e-3, damping=1e-2)
    put(ds, "vgg16", "kfac-g", True, False, 1e-1, 3e-2, 3e-2)
    put(ds, "vgg16", "kfac-g", True, True, 3e-2, 3e-2, 1e-2)
put("cifar100", "resnet32", "sgd", True, True, 3e-2, 3e-2, 3e-3)
put("cifar100", "resnet32", "adam", True, True, 3e-4, 3e-4, 1.0)
put("cifar100", "resnet32", "kfac-f", True, True, 1e-3, 1e-3, 1.0)
put("cifar100", "resnet32", "kfac-g", True, True, 5e-2, 5e-2, 1e-2)
put("cifar100", "vgg16", "sgd", True, True, 3e-2, 3e-2, 3e-3)
put("cifar100", "vgg16", "adam", True, True, 3e-4, 3e-4, 1.0)
put("cifar100", "vgg16", "kfac-f", True, True, 3e-3, 1e-3, 1.0)
put("cifar100", "vgg16", "kfac-g", True, True, 1e-1, 1e-1, 1e-2)

# Table 1's rows in the paper's order.
ROWS = [("cifar10", "vgg16", False, False), ("cifar10", "vgg16", True, False), ("cifar10", "vgg16", True, True),
        ("cifar10", "resnet32", False, False), ("cifar10", "resnet32", True, False),
        ("cifar10", "resnet32", True, True), ("cifar100", "vgg16", True, True),
        ("cifar100", "resnet32", True, True)]
OPTS = ["sgd", "adam", "kfac-f", "kfac-g"]
SHORT = {"cifar10": "c10", "cifar100": "c100"}


def kfac(opt):
    return opt.startswith("kfac")


def base(ds, model, opt, bn, aug, batch=128, epochs=None, decay_every=None):
    c = {
        "dataset": ds,
        "data_dir": "data/" + ds,
        "validation": 0,
        "augment": aug,
        "model": model,
        "arch": {"batchnorm": bn, "bias": True, "init": "glorot_uniform"},
        "optimizer": opt,
        "momentum": 0.9,
        "epochs": epochs or (100 if kfac(opt) else 200),
        "batch_size": batch,
        "eval_batch_size": 1000,
        "schedule": {"kind": "step_epochs", "gamma": 0.1,
                     "every_epochs": decay_every or (40 if kfac(opt) else 60)},
        "seed": 1,
        "precision": "float",
        "checkpoint": {"every": 1, "keep": 5},
    }
    if model.startswith("resnet"):
        c["arch"]["widen"] = 4  # ResNet32x4: widths 64/128/256 (MATH.md section 10)
    if kfac(opt):
        c["kfac"] = {"damping": 1e-3, "t_cov": 10, "t_inv": 100, "cov_ema_decay": 0.95,
                     "factor_init": "data_pass"}
        if opt == "kfac-g":
            c["kfac"]["gn_probe_variance"] = 2.0
    return c


def cell(ds, model, opt, bn, aug, reg, metrics="default", **kw):
    """A Table 1 cell's config with the official hyper-parameters; reg none | wd."""
    c = base(ds, model, opt, bn, aug, **kw)
    o = OFFICIAL[(ds, model, opt, bn, aug)]
    if reg == "none":
        lr, extra = o["none"]
        c.update({"lr": lr, "regularization": "none", "weight_decay": 0.0})
    else:
        lr, beta, extra = o["wd"]
        # The official SGD adds the decay before momentum: our l2.
        c.update({"lr": lr, "regularization": "l2" if opt == "sgd" else "wd", "weight_decay": beta})
    if kfac(opt):
        c["kfac"]["damping"] = extra["damping"]
        if not bn and extra["kl_clip"]:
            c["kfac"]["kl_clip"] = extra["kl_clip"]
    c["metrics"] = {"groups": metrics}
    return c


def name_of(ds, model, opt, bn, aug, reg, batch=128):
    tag = ("-bn" if bn else "") + ("-aug" if aug else "")
    return f"{SHORT[ds]}-{model}{tag}-{opt}-{reg}" + (f"-bs{batch}" if batch != 128 else "")


class Writer:
    def __init__(self):
        self.experiments = []
        self.count = 0

    def experiment(self, name, description):
        e = {"name": name, "description": description, "runs": [], "grids": []}
        self.experiments.append(e)
        return e

    def run(self, e, run_name, config, set_=None, after=None):
        config = dict(config, name=f"paper-{e['name']}-{run_name}")
        path = os.path.join(e["name"], run_name + ".json")
        os.makedirs(os.path.join(OUT, e["name"]), exist_ok=True)
        dump(os.path.join(OUT, path), config)
        r = {"name": run_name, "config": path}
        if set_:
            r["set"] = set_
        if after:
            r["after"] = after
        e["runs"].append(r)
        self.count += 1

    def grid(self, e, grid_name, base_path, axes, set_=None, in_suite=False):
        g = {"name": grid_name, "base": os.path.join("..", "..", base_path), "set": dict(set_ or {}, validation=5000),
             "axes": axes, "select": "val_acc", "final": True}
        path = os.path.join("grids", e["name"], grid_name + ".json")
        os.makedirs(os.path.join(OUT, "grids", e["name"]), exist_ok=True)
        dump(os.path.join(OUT, path), g)
        if in_suite:
            e["grids"].append(path)


def dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def around(x, n=3):
    """x/3, x, 3x (n=3) for a learning-rate or decay search."""
    return [float(f"{x / 3:.3g}"), x, float(f"{x * 3:.3g}")][:n]


def main():
    w = Writer()
    table1 = w.experiment("table1", "Table 1: 8 rows x SGD/Adam/K-FAC-F/K-FAC-G x {none, WD} with the official "
                          "hyper-parameters (the rows without BN are the experiment table2, which also logs "
                          "the Jacobian norm); grids under grids/table1 run the paper's search")
    table2 = w.experiment("table2", "Table 2 (and Table 1 rows 1 and 4): VGG16 and ResNet32 without BN, all four "
                          "optimizers x {none, WD}, logging the Jacobian norm and the K-FAC GN norm")
    t1search = w.experiment("table1-search", "Table 1's hyper-parameter search (App. A): per cell, lr x beta "
                            "around the official values on a held-out 5k, the best retrained on 50k")
    for ds, model, bn, aug in ROWS:
        for opt in OPTS:
            for reg in ("none", "wd"):
                e = table1 if bn else table2
                metrics = "default" if bn else "norms,elr,gap,jacobian,gn"
                c = cell(ds, model, opt, bn, aug, reg, metrics=metrics)
                n = name_of(ds, model, opt, bn, aug, reg)
                w.run(e, n, c)
                axes = {"lr": around(c["lr"])}
                if reg == "wd":
                    axes["weight_decay"] = around(c["weight_decay"])
                w.grid(t1search, n, os.path.join(e["name"], n + ".json"), axes, in_suite=True)

    # Fig. 1: L2 beside none/WD on the BN+Aug rows (Table 1 has none and WD).
    fig1 = w.experiment("fig1", "Fig. 1: L2 regularization on the BN+Aug rows for every optimizer (baseline and WD "
                        "are Table 1's runs); SGD here uses decoupled WD (beta = official L2 / (1 - momentum)), "
                        "since the official SGD's WD is L2")
    for ds, model, bn, aug in ROWS:
        if not (bn and aug):
            continue
        for opt in OPTS:
            c = cell(ds, model, opt, bn, aug, "wd")
            if opt == "sgd":
                c.update({"regularization": "wd", "weight_decay": float(f"{c['weight_decay'] / 0.1:.3g}")})
                n = name_of(ds, model, opt, bn, aug, "decoupled-wd")
            else:
                c.update({"regularization": "l2", "weight_decay": 5e-4})
                n = name_of(ds, model, opt, bn, aug, "l2")
                w.grid(fig1, n, os.path.join("fig1", n + ".json"),
                       {"lr": around(c["lr"]), "weight_decay": [1e-4, 5e-4, 1e-3]})
            w.run(fig1, n, c)

    # Table 3: batch 640 / 2000 (128 is Table 1), BN + Aug. Learning rates scaled by sqrt(B/128)
    # (Hoffer et al. 2017, as the paper's adjusted search ranges); SGD decays every 80 epochs at 2K.
    table3 = w.experiment("table3", "Table 3: batch 640 and 2000 (batch 128 is Table 1's BN+Aug rows), "
                          "lr scaled by sqrt(B/128) as a starting point; grids under grids/table3")
    for ds, model in (("cifar10", "vgg16"), ("cifar10", "resnet32"), ("cifar100", "resnet32")):
        for opt in ("sgd", "kfac-f", "kfac-g"):
            for batch in (640, 2000):
                for reg in ("none", "wd"):
                    decay = 80 if (batch == 2000 and not kfac(opt)) else None
                    c = cell(ds, model, opt, True, True, reg, batch=batch, decay_every=decay)
                    c["lr"] = float(f"{c['lr'] * math.sqrt(batch / 128):.3g}")
                    n = name_of(ds, model, opt, True, True, reg, batch)
                    w.run(table3, n, c)
                    axes = {"lr": around(c["lr"])}
                    if reg == "wd":
                        axes["weight_decay"] = around(c["weight_decay"])
                    w.grid(table3, n, os.path.join("table3", n + ".json"), axes)

    # Fig. 2 / Fig. 6: decay scope on ResNet32 CIFAR-100 BN+Aug: baseline, wd-conv, wd-fc, wd-all.
    for fig, opts in (("fig2", ("sgd", "adam")), ("fig6", ("kfac-f", "kfac-g"))):
        e = w.experiment(fig, f"Fig. {fig[-1]}: ResNet32 CIFAR-100 BN+Aug, {', '.join(opts)}: baseline / wd-conv "
                         "(decay on the conv layers, all followed by BN) / wd-fc (the last layer only) / wd-all")
        for opt in opts:
            for scheme in ("baseline", "wd-conv", "wd-fc", "wd-all"):
                c = cell("cifar100", "resnet32", opt, True, True, "none" if scheme == "baseline" else "wd")
                if scheme != "baseline":
                    c["wd_scope"] = {"wd-conv": "conv", "wd-fc": "fc", "wd-all": "all"}[scheme]
                w.run(e, f"c100-resnet32-bn-aug-{opt}-{scheme}", c)

    # Fig. 3: effective learning rate of ResNet32's first layer, SGD, CIFAR-100, with and without WD.
    fig3 = w.experiment("fig3", "Fig. 3: effective learning rate eta/||theta||^2 of ResNet32's first layer, SGD, "
                        "CIFAR-100 BN+Aug, with and without WD (3 x0.1 drops 60 epochs apart)")
    for reg in ("none", "wd"):
        c = cell("cifar100", "resnet32", "sgd", True, True, reg, metrics="norms,elr,gap")
        w.run(fig3, f"c100-resnet32-bn-aug-sgd-{reg}", c)

    # Fig. 4: wn-conv transfer: the conv layers follow the WD run's per-epoch norms.
    fig4 = w.experiment("fig4", "Fig. 4: ResNet32 CIFAR-100 BN+Aug, SGD: baseline, wd-all, wn-conv (conv layers "
                        "rescaled each epoch to the wd-all run's norms, no decay) and wd-fc+wn-conv")
    src = "c100-resnet32-bn-aug-sgd-wd-all"
    c = cell("cifar100", "resnet32", "sgd", True, True, "none")
    w.run(fig4, "c100-resnet32-bn-aug-sgd-baseline", c)
    c = cell("cifar100", "resnet32", "sgd", True, True, "wd")
    w.run(fig4, src, c)
    c = cell("cifar100", "resnet32", "sgd", True, True, "none")
    # norms_from: where `reproduce --suite paper` puts the source run (the suite sets it to the same run
    # under its --out).
    c["wn"] = {"scope": "conv", "norms_from": "runs/paper/fig4/" + src}
    w.run(fig4, "c100-resnet32-bn-aug-sgd-wn-conv", c, set_={"wn.norms_from": "{exp}/" + src}, after=[src])
    c = cell("cifar100", "resnet32", "sgd", True, True, "wd")
    c["wd_scope"] = "fc"
    c["wn"] = {"scope": "conv", "norms_from": "runs/paper/fig4/" + src}
    w.run(fig4, "c100-resnet32-bn-aug-sgd-wd-fc-wn-conv", c, set_={"wn.norms_from": "{exp}/" + src}, after=[src])

    # Fig. 5: K-FAC GN norm vs Jacobian norm vs generalization gap over MLPs on MNIST and VGG11-19.
    fig5 = w.experiment("fig5", "Fig. 5: MLPs of depth 1-4 x width 256/512/1024 on MNIST and VGG11/13/16/19 "
                        "without BN on CIFAR-10, SGD without decay, trained to ~100% training accuracy, "
                        "logging the K-FAC GN norm, the Jacobian norm and the generalization gap")
    for depth in (1, 2, 3, 4):
        for width in (256, 512, 1024):
            c = {"dataset": "mnist", "data_dir": "data/mnist", "validation": 0, "model": "mlp",
                 "arch": {"depth": depth, "width": width, "batchnorm": False, "bias": True},
                 "optimizer": "sgd", "lr": 0.03, "momentum": 0.9, "regularization": "none", "weight_decay": 0.0,
                 "epochs": 100, "batch_size": 128, "schedule": {"kind": "step_epochs", "every_epochs": 40,
                                                                "gamma": 0.1},
                 "seed": 1, "metrics": {"groups": "norms,elr,gap,train_eval,jacobian,gn"}}
            w.run(fig5, f"mnist-mlp-d{depth}-w{width}", c)
    for depth in (11, 13, 16, 19):
        c = cell("cifar10", "vgg16", "sgd", False, False, "none", metrics="norms,elr,gap,train_eval,jacobian,gn")
        c["model"] = f"vgg{depth}"
        w.run(fig5, f"c10-vgg{depth}-sgd-none", c)

    # Fig. 7: trace norms of the Fisher and GN blocks of ResNet32's first layer, K-FAC-F, BN, CIFAR-10.
    fig7 = w.experiment("fig7", "Fig. 7: trace norms of the Fisher and Gauss-Newton blocks of ResNet32's first "
                        "layer at normalized weights, K-FAC-F, BN, CIFAR-10, with and without WD")
    for reg in ("none", "wd"):
        c = cell("cifar10", "resnet32", "kfac-f", True, False, reg, metrics="norms,elr,gap,damping,trace")
        w.run(fig7, f"c10-resnet32-bn-kfac-f-{reg}", c)

    # Fig. 9: optimization speed: constant learning rate; K-FAC batch 640, SGD/Adam batch 128.
    fig9 = w.experiment("fig9", "Fig. 9 (App. G.3): training loss per epoch and per second, VGG16 and ResNet32 "
                        "CIFAR-10 with BN, constant learning rate, K-FAC batch 640, SGD/Adam batch 128")
    for model in ("vgg16", "resnet32"):
        for opt in OPTS:
            batch = 640 if kfac(opt) else 128
            c = cell("cifar10", model, opt, True, False, "none", batch=batch, epochs=100)
            c["schedule"] = {"kind": "constant"}
            w.run(fig9, f"c10-{model}-bn-{opt}-bs{batch}", c)

    suite = {"name": "paper", "description": "The paper's experiments at full scale (CIFAR-10/100 in data/, "
             "GPU). Generated by scripts/make_paper_configs.py; each experiment is selectable with "
             "`wdlab reproduce --suite paper --only NAME`.", "experiments": w.experiments}
    dump(os.path.join(OUT, "suite.json"), suite)
    print(f"wrote {w.count} run configs, {len(w.experiments)} experiments and their grids to {OUT}")


if __name__ == "__main__":
    main()
