#!/usr/bin/env python3
"""Writes the laptop experiments of `wdlab reproduce`: configs/laptop/demo.json (the README's main
job: each mechanism's trajectory signature, 3 seeds, about 10 minutes at -j 2 on a 2-core machine),
configs/laptop/suite.json (the same design at a larger scale, about 30 minutes), their run configs
under configs/laptop/demo/ and configs/laptop/experiments/, and the sweep grids under
configs/laptop/grids/. Regenerate, never edit the generated files by hand.

Design: each setting is built from the quantity its signature must show, not from accuracy (at this
scale accuracy gaps are within seed noise).

  The clock is the decay's time scale. The paper's runs decay the weights by about 1e-3 of their
  norm per step at the initial learning rate (MATH.md 10: K-FAC-F eta*beta = 1e-3 with eta 1e-3,
  beta 1; K-FAC-G 3e-4 to 1e-3; SGD with L2 and heavy-ball momentum eta*lambda/(1-alpha): VGG16
  0.1*1e-3/0.1 = 1e-3, ResNet32 3e-2*3e-3/0.1 = 9e-4). We keep that per-step decay, DECAY = 1e-3, so
  the time scale is TAU = 1/DECAY = 1000 steps in every setting, and set each optimizer's decay
  factor from its learning rate:
    SGD, L2 (the paper's SGD, PyTorch's weight_decay: beta*theta added to the gradient before the
      momentum, so the momentum amplifies it by 1/(1-alpha)): lambda = DECAY*(1-alpha)/eta.
      The equilibrium angle per step of a BN-scaled weight is then sqrt(2*eta*lambda/(1+alpha))
      (Wan et al. 2021; common/train/rotation.hpp), the prediction rot_pred the rotation group logs.
    K-FAC (decoupled: theta <- theta - eta*(v + beta*theta)): beta = DECAY/eta.
  The learning rates are configs/laptop's starting points (scripts/make_laptop_configs.py: SGD 0.05
  for BN networks, 0.02 without BN, K-FAC-F and K-FAC-G 0.01), never chosen by a signature; with them
  the K-FAC decay factor is configs/laptop's 0.1, and SGD's lambda is 2e-3 (BN) / 5e-3 (no BN), in
  the paper's range of L2 factors (5e-4 to 3e-3 at eta 0.01 to 0.1 there).
  Constant learning rate (no schedule): the equilibrium and the norm growth are then undisturbed.

  (I) effective learning rate (Fig. 3) and rotational equilibrium: BN network + SGD, none vs L2.
      A weight followed by BN is scale-invariant: its effective learning rate is eta/||W||^2. Without
      decay ||W||^2 only grows; with it, ||W||^2 relaxes to the equilibrium where the decay balances
      the orthogonal updates, on the time scale TAU. The runs last 3 TAU (3000 steps), so the decayed
      runs are at equilibrium and the undecayed norms have grown for as long. A small training subset
      (4000 images, 31 steps per epoch) makes many cheap epochs, each a row of the trajectory.
  (II) Jacobian norm (Table 2): MLP without BN (no scale invariance: the decay changes the function),
      SGD vs K-FAC-G, none vs decay, 3 TAU. Exact ||J_x||_F^2 on the 256-image training probe
      (jacobian group: 10 backward passes, exact for these MLPs) and the K-FAC GN norm (gn group).
      Two depths, each its own experiment and its own II.1 verdict: mech2-jacobian (2 hidden
      layers, L+1 = 3 weight layers) and mech2-jacobian-deep (6 hidden layers, L+1 = 7), the same
      width, data, learning rates, decay factors (DECAY per step), KL clip and 3 TAU.
      Why depth (decided from the paper's reasoning, before any Jacobian result of the deep net;
      the depth-2 net's result, SGD's factor above K-FAC-G's, had been seen): Theorem 1 (MATH.md 6)
      makes K-FAC-G's decoupled WD a penalty on the K-FAC GN norm, (beta/2)(L+1)||J_x||_F^2 for a
      deep linear net, whatever the depth, while SGD's L2 penalizes ||theta||^2. For a deep linear
      net J_x = W_L...W_0, and the smallest sum of ||W_l||_F^2 over the factorizations of one
      product P is (L+1) sum_i sigma_i(P)^(2/(L+1)) (balanced factors), so L2 acts on the function
      as a Schatten-2/(L+1) quasi-norm penalty, while ||J_x||_F^2 = sum_i sigma_i(P)^2. With 3
      weight layers the exponent is 2/3, the two penalties are the most alike they get in a deep
      net, and L2 still shrinks large singular values; as L grows the exponent goes to 0 (a rank
      penalty) and L2 leaves the size of J_x ever less constrained, while K-FAC-G's penalty stays
      on ||J_x||_F^2 and its factor (L+1) grows. The paper's Table 2 networks have 14 (VGG16) and
      32 (ResNet32, on its longest path) weight layers, and its gap is larger for the deeper one (SGD x4.0 vs K-FAC-G
      x9.7 on VGG16, x2.6 vs x33 on ResNet32). So the depth-2 net is the weakest test of the
      claim, and the deep setting is the one the theorem is about; the depth-2 experiment stays
      in, with its own verdict. Depth 6 (not 14): without BN or residual connections a Glorot-
      initialized ReLU MLP halves the forward variance at every square layer (2^-6 at depth 6),
      and the runs must train at the shared learning rates; the cost (pilot wall time, one core,
      10 epochs of the demo's data: K-FAC-G 3.5 s at depth 6 vs 2.8 s at depth 2, SGD 2.0 vs
      1.5 s) keeps the demo under 10 minutes. The other principled difference, the paper's
      decay factors chosen per optimizer on validation rather than an equal per-step decay, is
      not tested here (the suite's `search` grids K-FAC-G's beta only). Noticed after the demo's
      results of both depths (so not part of this design): the official no-BN configs give SGD a
      much smaller per-step decay than K-FAC-G (MATH.md 10: SGD eta*lambda/(1-alpha) = 9e-5 for
      VGG16, 3e-5 for ResNet32; K-FAC-G eta*beta = 9e-4), while DECAY above comes from the BN runs;
      a Table 2 setting with each optimizer's own decay would be a new, pre-registered experiment.
      That experiment, mech2-jacobian-official-decay (added after the results above, and committed
      before any run of it): the depth-2 MLP of mech2-jacobian, everything the same except SGD's
      per-step decay, OFFICIAL_SGD_DECAY_RATIO = 0.1 x DECAY, the official configs' ratio for VGG16
      (SGD L2 lambda 5e-4 at lr 0.02). Of the two networks' ratios (VGG16 1/10, ResNet32 1/30) it
      takes the one nearer to equal decay, the smaller departure from the equal-decay design. Its
      question: does the paper's Table 2 ordering follow from its decay settings rather than from
      the optimizer? Its own II.1 verdict stands beside the equal-decay ones, whatever it shows.
  (II) Fig. 5: MLPs of several depths x widths, K-FAC-G none vs WD, on a small subset fitted to ~100 %
      training accuracy within a few hundred steps; the figure compares the networks at the end of
      training, and one TAU lets the decay shrink the decayed networks' norms by ~e^-1 (cost: these
      runs outnumber the others, so they run 1 TAU).
  (III) effective damping (Eq. 14/16) and Fisher vs GN trace (Fig. 7): BN MLP + K-FAC-F (damping
      1e-3, no KL clip as in the paper's BN runs), none / WD on all layers / WD on the non-BN layer
      only (the last layer, fc<depth>: every hidden layer is followed by BN), 3 TAU, logging
      damping_eff = damping*||W_l||^2 and damping_frac per layer and the Fisher and GN traces at
      normalized weights on the training probe; row 0 is the initial state (epoch 0). The subset
      (4000 images in the demo, as in I) is set by cost; K-FAC-F fits it to ~100 % training accuracy
      within the first TAU, after which the Fisher with model-sampled targets on the training probe
      can only shrink as the predictions grow confident (the Fig. 7 mechanism).
  Seeds 1, 2, 3 per setting of I, II (Table 2) and III: one run entry with "seeds": [1, 2, 3], which
  `wdlab reproduce` expands into the runs "<name>-s<seed>" with "seed" set (--expand-seeds writes
  those runs out instead).

Experiments of the suite beyond the demo: table1 (Table 1 at laptop scale, starting-point
hyper-parameters) and search (held-out validation grids around the decay factors above).
"""
import argparse
import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "configs", "laptop"))

MOMENTUM = 0.9
DECAY = 1e-3          # decay per step at the initial learning rate, as in the paper's runs
TAU = 1.0 / DECAY     # the decay's time scale in steps
SEEDS = (1, 2, 3)
BATCH = 128

MLP = {"model": "mlp", "arch": {"depth": 2, "width": 256, "batchnorm": False, "bias": True}}
MLP_BN = {"model": "mlp", "arch": {"depth": 2, "width": 256, "batchnorm": True, "bias": True}}
CONV_BN = {"model": "convnet", "arch": {"base_width": 8, "batchnorm": True, "bias": True}}

# configs/laptop's starting points (make_laptop_configs.py); SGD takes 2.5x on BN networks.
LR = {"sgd": 0.02, "adam": 1e-3, "kfac-f": 0.01, "kfac-g": 0.01}
SGD_BN_LR = 0.05
DEEP = 6              # hidden layers of mech2-jacobian-deep (module docstring: Theorem 1 and depth)
# SGD's per-step decay over K-FAC-G's in the official no-BN Table 2 configs (MATH.md 10), VGG16's:
# SGD lr 3e-2, L2 3e-4, momentum 0.9 -> 9e-5; K-FAC-G lr 3e-2, beta 3e-2 -> 9e-4 (ResNet32's: 1/30).
OFFICIAL_SGD_DECAY_RATIO = 0.1
# Table 1 and the grids keep configs/laptop's decoupled factors (beta ~ 1/lr larger than L2's).
BETA_WD = {"sgd": 2e-2, "adam": 0.3, "kfac-f": 0.1, "kfac-g": 0.1}


def width(m, w):
    return dict(m, arch=dict(m["arch"], width=w))


def depth(m, d):
    return dict(m, arch=dict(m["arch"], depth=d))


def decay_factor(opt, reg, lr, per_step=None):
    """The decay factor giving DECAY (or per_step) per step (module docstring): L2 with heavy-ball
    momentum lambda = DECAY*(1-alpha)/eta; decoupled beta = DECAY/eta."""
    d = DECAY if per_step is None else per_step
    f = d * (1 - MOMENTUM) / lr if reg == "l2" else d / lr
    return float(f"{f:.6g}")  # no float noise in the configs


def epochs_for(taus, subset, val=0):
    """Epochs that make at least taus * TAU steps with floor((subset - val)/BATCH) steps an epoch."""
    steps = (subset - val) // BATCH
    return math.ceil(taus * TAU / steps)


def run_config(name, model, opt, reg, *, subset, val, test, epochs, lr=None, beta=None, metrics="default",
               scope="all", wd_params=None, batch=BATCH):
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
        "lr": lr if lr is not None else (SGD_BN_LR if opt == "sgd" and bn else LR[opt]),
        "momentum": MOMENTUM,
        "regularization": "none" if reg == "none" else reg,
        "weight_decay": 0.0 if reg == "none" else (beta if beta is not None else BETA_WD[opt]),
        "epochs": epochs,
        "batch_size": batch,
        "seed": 1,
        "precision": "float",
        "metrics": {"groups": metrics, "probe": 256},
        "checkpoint": {"every": 10, "keep": 1},
    }
    if reg != "none":
        c["wd_scope"] = scope
        if wd_params:
            c["wd_params"] = wd_params
    if opt.startswith("kfac"):
        c["kfac"] = {"damping": 1e-3, "t_cov": 10, "t_inv": 100, "cov_ema_decay": 0.95, "factor_init": "data_pass"}
        if not bn:  # the official configs clip the KL change of every non-BN K-FAC run
            c["kfac"]["kl_clip"] = 1e-4
    return c


def designed(model, opt, reg, per_step=None, **kw):
    """A run of the mechanism experiments: the starting-point learning rate and the decay factor that
    gives DECAY (or per_step) per step (SGD: L2, the paper's form; K-FAC: decoupled WD)."""
    bn = model["arch"]["batchnorm"]
    lr = SGD_BN_LR if opt == "sgd" and bn else LR[opt]
    if reg == "decay":
        reg = "l2" if opt == "sgd" else "wd"
    beta = decay_factor(opt, reg, lr, per_step) if reg != "none" else None
    return run_config("", model, opt, reg, lr=lr, beta=beta, **kw)


class Suite:
    def __init__(self, name, folder, description, seeds_key):
        self.name, self.folder, self.description, self.seeds_key = name, folder, description, seeds_key
        self.experiments = []
        self.count = 0

    def experiment(self, name, description):
        e = {"name": name, "description": description, "runs": []}
        self.experiments.append(e)
        return e

    def run(self, e, run_name, config, set_=None, after=None, seeds=None):
        """One run entry; with seeds, one entry with "seeds" that `wdlab reproduce` expands into
        "<run_name>-s<seed>" with "seed" set (with --expand-seeds, those runs written out)."""
        rel = os.path.join(self.folder, e["name"], run_name + ".json")
        os.makedirs(os.path.join(OUT, self.folder, e["name"]), exist_ok=True)
        config = dict(config, name=f"{self.name}-{e['name']}-{run_name}")
        dump(os.path.join(OUT, rel), config)
        if seeds and not self.seeds_key:
            for seed in seeds:
                r = {"name": f"{run_name}-s{seed}", "config": rel, "set": dict(set_ or {}, seed=seed)}
                if after:
                    r["after"] = [a.replace("{seed}", str(seed)) for a in after]
                e["runs"].append(r)
                self.count += 1
            return rel
        r = {"name": run_name, "config": rel}
        if seeds:
            r["seeds"] = list(seeds)
        if set_:
            r["set"] = set_
        if after:
            r["after"] = after
        e["runs"].append(r)
        self.count += len(seeds) if seeds else 1
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


# The two scales. Steps per epoch = floor(subset/128); the epochs follow from the TAUs each setting
# runs (epochs_for). Costs on one core of the 2-core machine (pilot runs, WDLAB_THREADS=1, user
# time): BN MLP 2x128 + SGD + rotation 3.3 ms/step, MLP 2x128 SGD 2 ms, K-FAC-G 6 ms (+0.06 s per
# epoch for the jacobian and gn groups), BN MLP 2x128 K-FAC-F 10 ms (+0.09 s per epoch for trace),
# BN convnet 8-8-M-16-16-M + SGD 50 ms/step.
SCALES = {
    "demo": {
        # (I) the BN MLP: 3 TAU cost 10 s a run.
        "elr_model": width(MLP_BN, 128), "elr_data": dict(subset=4000, val=0, test=1000),
        "jac_model": width(MLP, 128), "jac_data": dict(subset=4000, val=0, test=1000),
        "jac_deep_model": depth(width(MLP, 128), DEEP),
        "gn_nets": [(d, w) for d in (1, 2, 3, 4) for w in (32, 128)],
        "gn_data": dict(subset=2000, val=0, test=1000),
        "damp_model": width(MLP_BN, 128), "damp_data": dict(subset=4000, val=0, test=1000),
    },
    "suite": {
        # (I) the BN convnet: every conv layer is followed by BN (scale-invariant), as in the
        # paper's VGG/ResNet; 3 TAU cost ~150 s a run, the suite's longest.
        "elr_model": CONV_BN, "elr_data": dict(subset=8000, val=0, test=2000),
        "jac_model": MLP, "jac_data": dict(subset=8000, val=0, test=2000),
        "jac_deep_model": depth(MLP, DEEP),
        "gn_nets": [(d, w) for d in (1, 2, 3, 4) for w in (32, 128, 256)],
        "gn_data": dict(subset=2000, val=0, test=2000),
        "damp_model": MLP_BN, "damp_data": dict(subset=8000, val=0, test=2000),
    },
}
TAUS = {"elr": 3, "jac": 3, "gn": 1, "damp": 3}


def mechanisms(s, scale):
    p = SCALES[scale]

    # (I) effective learning rate and rotational equilibrium.
    m, data = p["elr_model"], p["elr_data"]
    ep = epochs_for(TAUS["elr"], data["subset"], data["val"])
    lam = decay_factor("sgd", "l2", SGD_BN_LR)
    rot = math.sqrt(2 * SGD_BN_LR * lam / (1 + MOMENTUM))
    e = s.experiment("mech1-elr", (
        f"(I) Fig. 3: {net_name(m)} + SGD (lr {SGD_BN_LR} constant, momentum {MOMENTUM}), none vs L2 "
        f"lambda {lam:g} (the paper's SGD decay form; per-step decay eta*lambda/(1-alpha) = {DECAY:g} as in the "
        f"paper's runs, time scale TAU = {TAU:.0f} steps), {ep} epochs of {data['subset']} images = "
        f"{TAUS['elr']} TAU; seeds {list(SEEDS)}. Logs elr.* (eta/||W||^2 of every weight) and rotation "
        f"(angle per step vs the equilibrium prediction sqrt(2*eta*lambda/(1+alpha)) = {rot:.4f} rad)."))
    kw = dict(data, epochs=ep, metrics="norms,elr,gap,rotation")
    s.run(e, "none", designed(m, "sgd", "none", **kw), seeds=SEEDS)
    s.run(e, "wd", designed(m, "sgd", "decay", **kw), seeds=SEEDS)

    # (II) Jacobian regularization: SGD vs K-FAC-G, without and with decay, no BN; two depths.
    jacobian(s, "mech2-jacobian", p["jac_model"], p["jac_data"], "")
    jacobian(s, "mech2-jacobian-deep", p["jac_deep_model"], p["jac_data"], (
        f" Depth {DEEP} (L+1 = {DEEP + 1} weight layers): Theorem 1's K-FAC GN norm (L+1)||J_x||^2 vs L2's "
        f"Schatten-2/(L+1) penalty on J_x, the paper's networks having 14 and 32 weight layers "
        "(make_laptop_suite.py's docstring)."))
    jacobian(s, "mech2-jacobian-official-decay", p["jac_model"], p["jac_data"], (
        f" SGD's per-step decay is {OFFICIAL_SGD_DECAY_RATIO:g} x K-FAC-G's, the ratio of the official no-BN "
        "Table 2 configs (VGG16: SGD eta*lambda/(1-alpha) = 9e-5, K-FAC-G eta*beta = 9e-4; MATH.md 10); "
        "added after the equal-decay experiments' results (make_laptop_suite.py's docstring)."),
             sgd_per_step=DECAY * OFFICIAL_SGD_DECAY_RATIO)

    # (II) GN norm vs Jacobian norm vs generalization gap across networks (Fig. 5).
    data = p["gn_data"]
    ep = epochs_for(TAUS["gn"], data["subset"], data["val"])
    nets = p["gn_nets"]
    e = s.experiment("mech2-gn-jac", (
        f"(II) Fig. 5: {len(nets)} MLPs without BN (depth x width: "
        f"{', '.join(f'{d}x{w}' for d, w in nets)}), K-FAC-G (lr {LR['kfac-g']}) none vs WD beta "
        f"{decay_factor('kfac-g', 'wd', LR['kfac-g']):g}, on {data['subset']} training images fitted to ~100 % "
        f"training accuracy; {ep} epochs = {TAUS['gn']} TAU (the figure compares networks at the end of "
        "training; one TAU shrinks the decayed norms by ~e^-1), seed 1. Logs K-FAC GN norm, Jacobian norm and "
        "the gap (train_eval)."))
    for depth, w in nets:
        for reg in ("none", "wd"):
            m = {"model": "mlp", "arch": {"depth": depth, "width": w, "batchnorm": False, "bias": True}}
            s.run(e, f"d{depth}-w{w}-{reg}",
                  designed(m, "kfac-g", "decay" if reg == "wd" else "none", **data, epochs=ep,
                           metrics="norms,elr,gap,train_eval,jacobian,gn"))

    # (III) effective damping: K-FAC-F on a BN MLP.
    m, data = p["damp_model"], p["damp_data"]
    ep = epochs_for(TAUS["damp"], data["subset"], data["val"])
    last = f"fc{m['arch']['depth']}"
    e = s.experiment("mech3-damping", (
        f"(III) Eq. 16 and Fig. 7: {net_name(m)} (BN after every hidden layer) + K-FAC-F (lr {LR['kfac-f']}, "
        f"damping 1e-3, no KL clip), none / WD beta {decay_factor('kfac-f', 'wd', LR['kfac-f']):g} on all layers / "
        f"WD on the non-BN layer only ({last}, wd_scope list); per-step decay {DECAY:g} (TAU = {TAU:.0f} steps), "
        f"{ep} epochs of {data['subset']} images = {TAUS['damp']} TAU; seeds {list(SEEDS)}. Logs damping_eff = "
        "damping*||W_l||^2 and damping_frac per layer, Fisher and GN traces at normalized weights on the "
        "training probe (batch BN), from epoch 0."))
    kw = dict(data, epochs=ep, metrics="norms,elr,gap,damping,trace")
    s.run(e, "none", designed(m, "kfac-f", "none", **kw), seeds=SEEDS)
    s.run(e, "wd", designed(m, "kfac-f", "decay", **kw), seeds=SEEDS)
    s.run(e, "wd-last", designed(m, "kfac-f", "decay", scope="list", wd_params=[f"{last}.weight", f"{last}.bias"],
                                 **kw), seeds=SEEDS)


def jacobian(s, name, m, data, why, sgd_per_step=None):
    """(II) Table 2: SGD (L2) vs K-FAC-G (decoupled WD), none vs decay, on the no-BN MLP m; SGD's
    per-step decay is DECAY unless sgd_per_step is given."""
    ep = epochs_for(TAUS["jac"], data["subset"], data["val"])
    sgd_d = DECAY if sgd_per_step is None else sgd_per_step
    e = s.experiment(name, (
        f"(II) Table 2: {net_name(m)} without BN, SGD (lr {LR['sgd']}, L2 lambda "
        f"{decay_factor('sgd', 'l2', LR['sgd'], sgd_d):g}, per-step decay {sgd_d:g}) vs K-FAC-G (lr "
        f"{LR['kfac-g']}, decoupled WD beta {decay_factor('kfac-g', 'wd', LR['kfac-g']):g}, per-step decay "
        f"{DECAY:g}, KL clip 1e-4), none vs decay (TAU = {TAU:.0f} steps); {ep} epochs of {data['subset']} "
        f"images = {TAUS['jac']} TAU; seeds {list(SEEDS)}. Logs the exact Jacobian norm E||J_x||_F^2 and the "
        "K-FAC GN norm on the 256-image training probe." + why))
    kw = dict(data, epochs=ep, metrics="norms,elr,gap,train_eval,jacobian,gn")
    for opt in ("sgd", "kfac-g"):
        for reg in ("none", "wd"):
            per_step = sgd_per_step if opt == "sgd" else None
            s.run(e, f"{opt}-{reg}", designed(m, opt, "decay" if reg == "wd" else "none", per_step=per_step, **kw),
                  seeds=SEEDS)


def net_name(m):
    a = m["arch"]
    if m["model"] == "convnet":
        b = a["base_width"]
        return f"BN convnet {b}-{b}-M-{2 * b}-{2 * b}-M"
    return f"{'BN ' if a['batchnorm'] else ''}MLP 784-{'-'.join([str(a['width'])] * a['depth'])}-10"


def table1(s):
    e = s.experiment("table1", "Table 1 at laptop scale: MLP 784-256-256-10 without and with BN x "
                     "SGD/Adam/K-FAC-F/K-FAC-G x {none, WD}; starting-point hyper-parameters, not tuned")
    for model, tag in ((MLP, "mlp"), (MLP_BN, "mlp-bn")):
        for opt in ("sgd", "adam", "kfac-f", "kfac-g"):
            for reg in ("none", "wd"):
                c = run_config("", model, opt, reg, subset=12000, val=2000, test=5000, epochs=5)
                c["checkpoint"] = {"every": 1, "keep": 1}
                s.run(e, f"{tag}-{opt}-{reg}", c)


def search(s):
    e = s.experiment("search", "hyper-parameter grids chosen on the held-out validation split, the best "
                     "retrained on train+validation, around the mechanism experiments' decay factors: SGD's L2 "
                     "lambda for the BN convnet (mech1), K-FAC-G's WD beta for the MLP (mech2)")
    lam = decay_factor("sgd", "l2", SGD_BN_LR)
    base1 = s.run(e, "base-convnet-bn-sgd-l2", designed(CONV_BN, "sgd", "decay", subset=8000, val=1000, test=5000,
                                                        epochs=6, metrics="norms,elr,gap"))
    e["runs"].pop()  # the base is a grid's config, not a run of its own
    s.count -= 1
    s.grid(e, "convnet-bn-sgd-lambda", base1, {}, {"weight_decay": [lam / 4, lam, lam * 4]})
    beta = decay_factor("kfac-g", "wd", LR["kfac-g"])
    base2 = s.run(e, "base-mlp-kfac-g-wd", designed(MLP, "kfac-g", "decay", subset=12000, val=2000, test=5000,
                                                    epochs=10, metrics="norms,elr,gap,jacobian,gn"))
    e["runs"].pop()
    s.count -= 1
    s.grid(e, "mlp-kfac-g-beta", base2, {}, {"weight_decay": [beta * 0.3, beta, beta * 3]})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--expand-seeds", action="store_true",
                    help="write the runs <name>-s<seed> (seed set) instead of one run entry with \"seeds\" per "
                         "setting; `wdlab reproduce` makes the same runs from either")
    args = ap.parse_args()
    for stale in ("grids/convnet-bn-sgd-beta.json",):
        if os.path.exists(os.path.join(OUT, stale)):
            os.remove(os.path.join(OUT, stale))
    for folder in ("demo", "experiments"):  # drop run configs of settings no longer generated
        for root, _, files in os.walk(os.path.join(OUT, folder)):
            for f in files:
                if f.endswith(".json"):
                    os.remove(os.path.join(root, f))
    full = Suite("laptop", "experiments", (
        "The demo's design at a larger scale (BN convnet for I, MLPs of width 256, Table 2 at depths 2 and "
        f"{DEEP} and at the official decay ratio, 12 networks for Fig. 5), "
        f"3 seeds per mechanism setting, every decayed run at per-step decay {DECAY:g} (time scale TAU = "
        f"{TAU:.0f} steps, as in the paper's runs) for 3 TAU; plus Table 1 at laptop scale and the validation "
        "grids. 24 min 52 s wall measured on an idle 2-core machine at -j 2 (2912 CPU-s). Generated by "
        "scripts/make_laptop_suite.py "
        "(the design reasons are in its docstring)."), not args.expand_seeds)
    mechanisms(full, "suite")
    table1(full)
    search(full)
    full.write("suite.json")
    demo = Suite("demo", "demo", (
        "The three mechanisms' trajectory signatures in under 10 minutes on an idle 2-core machine (-j 2: "
        "9 min 32 s wall measured, 1095 CPU-s), 3 seeds "
        f"per setting: every decayed run at per-step decay {DECAY:g} (time scale TAU = {TAU:.0f} steps, as in "
        "the paper's runs), the learning rates configs/laptop's starting points, constant; I and III and "
        f"Table 2 (depths 2 and {DEEP}, and at the official decay ratio) run 3 TAU, Fig. 5's networks 1 TAU. Generated by scripts/make_laptop_suite.py (the design "
        "reasons are in its docstring)."), not args.expand_seeds)
    mechanisms(demo, "demo")
    demo.write("demo.json")
    print(f"wrote {full.count} suite runs and {demo.count} demo runs under {OUT}")


if __name__ == "__main__":
    main()
