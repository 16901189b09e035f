#!/usr/bin/env python3
"""Writes the laptop experiments of `wdlab reproduce`: configs/laptop/suite.json (each mechanism's
signature on Fashion-MNIST with small networks, under an hour on a 2-core machine),
configs/laptop/demo.json (the same signatures, smaller: minutes, the README's main job), their run
configs under configs/laptop/experiments/ and configs/laptop/demo/, and the sweep grids under
configs/laptop/grids/.

Scale: a training subset of Fashion-MNIST (validation carved from it), the first test images, small
networks (MLP 784-256-256-10, a BN convnet 8-8-M-16-16-M), few epochs. The runs' hyper-parameters are
the starting points of configs/laptop/ (scripts/make_laptop_configs.py) except where a grid of this
suite chose them on the held-out validation split; see the comments at each experiment.

Experiments:
  mech1-elr      (I) BN convnet + SGD: baseline / wd-all / wd-conv / wd-fc / wn-conv: the effective
                 learning rate of the BN layers falls without WD and stays level with it; wn-conv
                 (the conv layers rescaled each epoch to the wd-all run's norms, no decay) recovers
                 most of WD's gain (paper Figs. 2-4).
  mech2-jacobian (II) MLP without BN, SGD and K-FAC-G, without and with WD: the factor by which WD
                 reduces the Jacobian norm (Table 2).
  mech2-gn-jac   (II) MLPs of depth 1/2/4 x width 64/256, K-FAC-G with and without WD, on a small
                 subset so they reach ~100% training accuracy: K-FAC GN norm vs Jacobian norm vs
                 generalization gap (Fig. 5).
  mech3-damping  (III) BN MLP + K-FAC-F: none / WD on all layers / WD on the non-BN last layer
                 only, logging the Fisher and GN trace norms of the layers at normalized weights
                 (Fig. 7) and the effective damping.
  table1         Table 1 at laptop scale: MLP without and with BN x SGD/Adam/K-FAC-F/K-FAC-G x
                 {none, WD}.
  search         the grids: SGD's decay factor for the BN convnet, K-FAC-G's for the MLP (held-out
                 validation, the best retrained on train+validation).
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "configs", "laptop"))

MLP = {"model": "mlp", "arch": {"depth": 2, "width": 256, "batchnorm": False, "bias": True}}
MLP_BN = {"model": "mlp", "arch": {"depth": 2, "width": 256, "batchnorm": True, "bias": True}}
CONV_BN = {"model": "convnet", "arch": {"base_width": 8, "batchnorm": True, "bias": True}}

LR = {"sgd": 0.02, "adam": 1e-3, "kfac-f": 0.01, "kfac-g": 0.01}
# Decoupled decay (wd: theta -= lr*beta*theta after the step) needs beta ~ 1/lr larger than L2 for the
# same per-step shrinkage; these are the starting points of configs/laptop, except SGD's: 2e-2 makes
# the decay's time scale 1/(lr*beta) = 1000 steps comparable to these short runs (~500 steps), where
# configs/laptop's 5e-4 would barely act. The search experiment's grid checks it on validation.
BETA_WD = {"sgd": 2e-2, "adam": 0.3, "kfac-f": 0.1, "kfac-g": 0.1}


def run_config(name, model, opt, reg, *, subset, val, test, epochs, lr=None, beta=None, metrics="default",
               scope="all", wd_params=None, batch=128, wn=None, sgd_bn_lr=0.05):
    bn = model["arch"]["batchnorm"]
    c = {
        "name": name,
        "dataset": "fashion-mnist",
        "train_subset": subset,
        "validation": val,
        "test_subset": test,
        "model": model["model"],
        "arch": dict(model["arch"]),
        "optimizer": opt,
        "lr": lr if lr is not None else (sgd_bn_lr if opt == "sgd" and bn else LR[opt]),
        "momentum": 0.9,
        "regularization": "none" if reg == "none" else reg,
        "weight_decay": 0.0 if reg == "none" else (beta if beta is not None else BETA_WD[opt]),
        "epochs": epochs,
        "batch_size": batch,
        "seed": 1,
        "precision": "float",
        "metrics": {"groups": metrics, "probe": 256},
        "checkpoint": {"every": 1, "keep": 1},
    }
    if reg != "none":
        c["wd_scope"] = scope
        if wd_params:
            c["wd_params"] = wd_params
    if opt.startswith("kfac"):
        c["kfac"] = {"damping": 1e-3, "t_cov": 10, "t_inv": 100, "cov_ema_decay": 0.95, "factor_init": "data_pass"}
        if not bn:  # the official configs clip the KL change of every non-BN K-FAC run
            c["kfac"]["kl_clip"] = 1e-4
    if wn:
        c["wn"] = wn
    return c


class Suite:
    def __init__(self, name, folder, description):
        self.name, self.folder, self.description = name, folder, description
        self.experiments = []
        self.count = 0

    def experiment(self, name, description):
        e = {"name": name, "description": description, "runs": []}
        self.experiments.append(e)
        return e

    def run(self, e, run_name, config, set_=None, after=None):
        rel = os.path.join(self.folder, e["name"], run_name + ".json")
        os.makedirs(os.path.join(OUT, self.folder, e["name"]), exist_ok=True)
        config = dict(config, name=f"{self.name}-{e['name']}-{run_name}")
        dump(os.path.join(OUT, rel), config)
        r = {"name": run_name, "config": rel}
        if set_:
            r["set"] = set_
        if after:
            r["after"] = after
        e["runs"].append(r)
        self.count += 1
        return rel

    def grid(self, e, name, base_rel, set_, axes):
        os.makedirs(os.path.join(OUT, "grids"), exist_ok=True)
        g = {"name": name, "base": os.path.join("..", base_rel), "set": set_, "axes": axes, "select": "val_acc",
             "final": True}
        dump(os.path.join(OUT, "grids", name + ".json"), g)
        e.setdefault("grids", []).append(os.path.join("grids", name + ".json"))

    def write(self, file):
        dump(os.path.join(OUT, file), {"name": self.name, "description": self.description,
                                       "experiments": self.experiments})


def dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def mechanisms(s, scale):
    """The mechanism experiments; scale: "suite" or "demo"."""
    demo = scale == "demo"
    big = dict(subset=6000 if demo else 12000, val=1000 if demo else 2000, test=2000 if demo else 5000)

    # (I) effective learning rate. The demo uses the BN MLP (no wn-conv: every rescaled tensor must
    # be followed by BN, and the MLP's last layer is not).
    e = s.experiment("mech1-elr", "(I) BN network + SGD: ELR of the BN layers without / with WD; wd-conv, "
                     "wd-fc and wn-conv (norms of the wd-all run) against baseline and wd-all")
    model = MLP_BN if demo else CONV_BN
    ep = 4 if demo else 6
    conv = dict(subset=8000, val=1000, test=5000)  # the convnet is ~10x the MLP's cost per image
    kw = dict(big if demo else conv, epochs=ep, metrics="norms,elr,gap")
    s.run(e, "baseline", run_config("", model, "sgd", "none", **kw))
    s.run(e, "wd-all", run_config("", model, "sgd", "wd", **kw))
    if not demo:
        s.run(e, "wd-conv", run_config("", model, "sgd", "wd", scope="conv", **kw))
        s.run(e, "wd-fc", run_config("", model, "sgd", "wd", scope="fc", **kw))
        wn = {"scope": "conv", "norms_from": "runs/laptop/mech1-elr/wd-all"}
        s.run(e, "wn-conv", run_config("", model, "sgd", "none", wn=wn, **kw),
              set_={"wn.norms_from": "{exp}/wd-all"}, after=["wd-all"])

    # (II) Jacobian regularization: SGD vs K-FAC-G, without and with WD, no BN.
    e = s.experiment("mech2-jacobian", "(II) MLP without BN: the factor by which WD reduces ||J_x||_F^2 under "
                     "SGD and under K-FAC-G (Table 2)")
    kw = dict(big, epochs=4 if demo else 10, metrics="norms,elr,gap,jacobian,gn")
    m = dict(MLP, arch=dict(MLP["arch"], width=128 if demo else 256))
    for opt in ("sgd", "kfac-g"):
        for reg in ("none", "wd"):
            s.run(e, f"{opt}-{reg}", run_config("", m, opt, reg, **kw))

    # (II) GN norm vs Jacobian norm vs generalization gap across networks (Fig. 5).
    e = s.experiment("mech2-gn-jac", "(II) MLPs of varied depth x width without BN, K-FAC-G with and without "
                     "WD, on 2000 training images: K-FAC GN norm vs Jacobian norm vs gap (Fig. 5)")
    for depth in ((1, 3) if demo else (1, 2, 4)):
        for width in (64, 256):
            for reg in ("none", "wd"):
                m = {"model": "mlp", "arch": {"depth": depth, "width": width, "batchnorm": False, "bias": True}}
                s.run(e, f"d{depth}-w{width}-{reg}",
                      run_config("", m, "kfac-g", reg, subset=2500, val=500, test=2000 if demo else 5000,
                                 epochs=6 if demo else 15, metrics="norms,elr,gap,train_eval,jacobian,gn"))

    # (III) effective damping: K-FAC-F on a BN MLP.
    e = s.experiment("mech3-damping", "(III) BN MLP + K-FAC-F: Fisher vs GN trace norm of the BN layers at "
                     "normalized weights (Fig. 7), effective damping; WD on all layers vs on the non-BN last "
                     "layer only vs none")
    # A small training set fitted for many epochs: the Fisher (model-sampled targets) shrinks as the
    # predictions grow confident, as over the paper's 100 epochs.
    m = dict(MLP_BN, arch=dict(MLP_BN["arch"], width=128 if demo else 256))
    kw = dict(subset=2500, val=500, test=2000 if demo else 5000, epochs=8 if demo else 20,
              metrics="norms,elr,gap,damping,trace")
    s.run(e, "none", run_config("", m, "kfac-f", "none", **kw))
    s.run(e, "wd-all", run_config("", m, "kfac-f", "wd", **kw))
    if not demo:
        last = f"fc{m['arch']['depth']}"
        s.run(e, "wd-last", run_config("", m, "kfac-f", "wd", scope="list",
                                       wd_params=[f"{last}.weight", f"{last}.bias"], **kw))


def table1(s):
    e = s.experiment("table1", "Table 1 at laptop scale: MLP 784-256-256-10 without and with BN x "
                     "SGD/Adam/K-FAC-F/K-FAC-G x {none, WD}; starting-point hyper-parameters, not tuned")
    for model, tag in ((MLP, "mlp"), (MLP_BN, "mlp-bn")):
        for opt in ("sgd", "adam", "kfac-f", "kfac-g"):
            for reg in ("none", "wd"):
                s.run(e, f"{tag}-{opt}-{reg}", run_config("", model, opt, reg, subset=12000, val=2000, test=5000,
                                                          epochs=5))


def search(s):
    e = s.experiment("search", "hyper-parameter grids chosen on the held-out validation split, the best "
                     "retrained on train+validation: SGD's beta for the BN convnet (mech1), K-FAC-G's for the MLP "
                     "(mech2)")
    base1 = s.run(e, "base-convnet-bn-sgd-wd", run_config("", CONV_BN, "sgd", "wd", subset=8000, val=1000,
                                                          test=5000, epochs=6, metrics="norms,elr,gap"))
    e["runs"].pop()  # the base is a grid's config, not a run of its own
    s.count -= 1
    s.grid(e, "convnet-bn-sgd-beta", base1, {}, {"weight_decay": [5e-3, 2e-2, 5e-2]})
    base2 = s.run(e, "base-mlp-kfac-g-wd", run_config("", MLP, "kfac-g", "wd", subset=12000, val=2000, test=5000,
                                                      epochs=10, metrics="norms,elr,gap,jacobian,gn"))
    e["runs"].pop()
    s.count -= 1
    s.grid(e, "mlp-kfac-g-beta", base2, {}, {"weight_decay": [0.03, 0.1, 0.3]})


def main():
    full = Suite("laptop", "experiments", "Each mechanism's signature on Fashion-MNIST with small networks "
                 "(2-core CPU, under an hour). Generated by scripts/make_laptop_suite.py.")
    mechanisms(full, "suite")
    table1(full)
    search(full)
    full.write("suite.json")
    demo = Suite("demo", "demo", "The three signatures in a few minutes (smaller subsets, fewer epochs, a BN "
                 "MLP for mechanism I and so no wn-conv). Generated by scripts/make_laptop_suite.py.")
    mechanisms(demo, "demo")
    demo.write("demo.json")
    print(f"wrote {full.count} suite runs and {demo.count} demo runs under {OUT}")


if __name__ == "__main__":
    main()
