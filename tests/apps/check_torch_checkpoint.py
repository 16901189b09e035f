#!/usr/bin/python3
"""wdlab checkpoints in PyTorch, both ways (ctest label `torch`; README "Use a checkpoint in PyTorch").

    /usr/bin/python3 tests/apps/check_torch_checkpoint.py --wdlab BIN --work DIR

Trains tiny runs with wdlab (MLP in double, BN convnet and BN ResNet in float, SGD MLP in float) and
checks with Debian's python3-torch, through scripts/torch_load.py:
  1. logits of the module torch_load builds equal `wdlab eval --dump-logits` to 1e-5 relative on
     the 512 test images the run recorded, and the accuracies are the same;
  2. MLP: E‖J_x‖²_F by torch.autograd equals `wdlab measure`'s jac_norm to 1e-6, on the probe set
     measure reports;
  3. SGD: the epoch-1 checkpoint's momentum buffers in torch.optim.SGD's state, one step in PyTorch
     equals wdlab's next step (the epoch-2 checkpoint) to 1e-6, parameters and buffers;
  4. reverse: a state dict saved from PyTorch (changed weights) evaluates in `wdlab eval --weights`
     to PyTorch's logits; a missing or mis-shaped tensor is refused with its name.
Each check has a negative control (a guessed normalization, no weight decay, a wrong state dict).
Exit 77 (ctest SKIP) with the reason where torch or Fashion-MNIST is missing; never a pass.
"""
import argparse
import json
import os
import subprocess
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(f"SKIPPED: PyTorch is not importable by {sys.executable} ({e}); "
          "install Debian's python3-torch (scripts/setup.sh test does)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import torch_load  # noqa: E402

# Tolerances of the issue (relative, Frobenius): float logits 1e-5, the Jacobian norm in double
# 1e-6, one SGD step in float 1e-6.
TOL_LOGITS, TOL_JAC, TOL_STEP = 1e-5, 1e-6, 1e-6
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def rel(a, b):
    a, b = a.to(torch.float64), b.to(torch.float64)
    return ((a - b).norm() / b.norm()).item()


def wdlab(args, expect_ok=True):
    r = subprocess.run([WDLAB] + args, capture_output=True, text=True)
    if expect_ok and r.returncode != 0:
        print(f"wdlab {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        sys.exit(1)
    return r


COMMON = ["--set", "validation=0", "--set", "test_subset=512", "--set", "seed=3", "--quiet"]


def train(name, sets):
    out = os.path.join(WORK, name)
    args = ["train", "--out", out] + COMMON
    for s in sets:
        args += ["--set", s]
    wdlab(args)
    return out


def ckpt(run, epoch):
    return os.path.join(run, "checkpoints", f"epoch-{epoch:04d}.safetensors")


def eval_logits(path, extra=()):
    dump = path + ".logits.safetensors" if not extra else os.path.join(WORK, "w.logits.safetensors")
    r = wdlab(["eval", "--checkpoint", path, "--dump-logits", dump, "--format", "json"] + list(extra))
    t, _ = torch_load.read_safetensors(dump)
    return t["logits"], t["labels"], json.loads(r.stdout)


def compare_logits(name, path):
    module, transform = torch_load.load(path)
    p = torch_load.pipeline(path)
    x, y = torch_load.read_split(p, "test")
    logits, _, acc = torch_load.evaluate(module, transform, x, y)
    ref, labels, j = eval_logits(path)
    check(x.shape[0] == 512 and ref.shape[0] == 512, f"{name}: 512 test images on both sides ({x.shape[0]}, {ref.shape[0]})")
    check(torch.equal(labels, y), f"{name}: the same labels in the same order")
    e = rel(logits, ref)
    check(e <= TOL_LOGITS, f"{name}: logits rel. error {e:.3g} <= {TOL_LOGITS:g} (max |diff| "
                           f"{(logits.double() - ref).abs().max().item():.3g})")
    check(acc == j["accuracy"], f"{name}: accuracy PyTorch {acc:.6f} == wdlab eval {j['accuracy']:.6f}")
    # Control: the normalization a user would guess (0.5, 0.5) changes the logits far beyond the tolerance.
    guess = torch_load.Transform(dict(p, normalization={"mean": [0.5] * p["channels"], "std": [0.5] * p["channels"]}))
    g, _, _ = torch_load.evaluate(module, guess, x, y)
    eg = rel(g, ref)
    check(eg > 100 * TOL_LOGITS, f"{name}: control, a guessed normalization: rel. error {eg:.3g} (must fail the check)")
    return module, transform, p, x, y


def jacobian_norm(module, transform, x):
    """(1/N) Σ_n ‖∂logits(x_n)/∂x_n‖²_F by autograd, K backward passes (examples are independent in eval)."""
    xin = transform(x).to(torch.float64).requires_grad_(True)
    out = module(xin)
    total = 0.0
    for k in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[:, k].sum(), xin, retain_graph=True)
        total += (g * g).sum().item()
    return total / x.shape[0]


def check_jacobian(path, module, transform, p):
    r = wdlab(["measure", "--checkpoint", path, "--metrics", "jacobian", "--probe", "64", "--format", "json"])
    j = json.loads(r.stdout)
    n = j["probe"] if isinstance(j["probe"], int) else j["probe"]["examples"]
    # The probe set measure reports: the first n test examples, or (where measure says so) the first
    # n of the training split (the run has no hold-out, so torch_load reads it as the run did).
    split = j.get("probe_split", j["probe"].get("split", "test") if isinstance(j["probe"], dict) else "test")
    x, _ = torch_load.read_split(p, split)
    ours = jacobian_norm(module, transform, x[:n])
    theirs = j["metrics"]["jac_norm"]
    e = abs(ours - theirs) / abs(theirs)
    check(e <= TOL_JAC, f"mlp: E|J_x|^2_F on {n} {split} examples: PyTorch {ours:.12g}, wdlab measure {theirs:.12g}, "
                        f"rel. error {e:.3g} <= {TOL_JAC:g}")
    other = jacobian_norm(module, transform, x[1:n + 1])
    check(abs(other - theirs) / abs(theirs) > TOL_JAC, "mlp: control, the probe set shifted by one example differs "
                                                       f"({abs(other - theirs) / abs(theirs):.3g})")


def check_sgd_step(run):
    cfg = json.load(open(os.path.join(run, "config.json")))
    lr, mu, beta = cfg["lr"], cfg["momentum"], cfg["weight_decay"]
    first, second = ckpt(run, 1), ckpt(run, 2)
    t1, m1 = torch_load.read_safetensors(first)
    t2, _ = torch_load.read_safetensors(second)
    check(m1.get("optim_layout") == "2", f"sgd: checkpoint metadata optim_layout {m1.get('optim_layout')!r} == '2'")
    p = torch_load.pipeline(first)
    x, y = torch_load.read_split(p, "train")
    check(x.shape[0] == cfg["batch_size"], f"sgd: one batch per epoch ({x.shape[0]} examples)")

    def one_step(weight_decay):
        module, transform = torch_load.load(first)
        named = dict(module.named_parameters())
        # wdlab's SGD (heavy ball, L2 on every tensor): g += βθ; v ← μv + g; θ ← θ − ηv, which is
        # torch.optim.SGD(momentum=μ, dampening=0, weight_decay=β, nesterov=False) once its
        # momentum_buffer holds wdlab's v.
        opt = torch.optim.SGD(named.values(), lr=lr, momentum=mu, dampening=0, weight_decay=weight_decay)
        for name, param in named.items():
            buf = t1["optim.momentum." + name]
            assert buf.shape == param.shape, f"optim.momentum.{name}: shape {tuple(buf.shape)} != {tuple(param.shape)}"
            opt.state[param]["momentum_buffer"] = buf.clone()
        module.train()
        opt.zero_grad()
        F.cross_entropy(module(transform(x)), y).backward()
        opt.step()
        return named, opt

    named, opt = one_step(beta)
    worst = 0.0
    for name, param in named.items():
        worst = max(worst, rel(param.detach(), t2[name]),
                    rel(opt.state[param]["momentum_buffer"], t2["optim.momentum." + name]))
    check(worst <= TOL_STEP, f"sgd: one more step in torch.optim.SGD equals wdlab's: worst rel. error {worst:.3g} "
                             f"over {len(named)} parameters and momentum buffers <= {TOL_STEP:g}")
    named0, _ = one_step(0.0)
    e0 = max(rel(param.detach(), t2[name]) for name, param in named0.items())
    check(e0 > 10 * TOL_STEP, f"sgd: control, the step without weight decay differs ({e0:.3g})")


def check_reverse(name, path, module, transform, x, y):
    # A model changed in PyTorch (weights scaled, BN statistics shifted): its state dict, saved as
    # PyTorch holds it (num_batches_tracked included), evaluates in wdlab to PyTorch's logits.
    with torch.no_grad():
        for k, v in module.state_dict().items():
            if k.endswith("weight"):
                v.mul_(0.9)
            elif k.endswith("running_mean"):
                v.add_(0.01)
    ours, _, _ = torch_load.evaluate(module, transform, x, y)
    w = os.path.join(WORK, f"{name}.torch.safetensors")
    torch_load.save_safetensors(w, module.state_dict())
    theirs, _, _ = eval_logits(path, ["--weights", w])
    e = rel(ours, theirs)
    check(e <= TOL_LOGITS, f"{name}: a PyTorch state dict in wdlab eval --weights: logits rel. error {e:.3g}")
    # The same file with the network from an experiment config instead of a checkpoint.
    run_config = os.path.join(os.path.dirname(os.path.dirname(path)), "config.json")
    dump = os.path.join(WORK, f"{name}.config.logits.safetensors")
    wdlab(["eval", "--config", run_config, "--weights", w, "--dump-logits", dump])
    via_config = torch_load.read_safetensors(dump)[0]["logits"]
    check(torch.equal(via_config, theirs), f"{name}: wdlab eval --config CONFIG --weights gives the same logits")
    ckpt_logits, _, _ = eval_logits(path)
    check(rel(ckpt_logits, theirs) > 100 * TOL_LOGITS, f"{name}: control, the weights file changed the logits")
    sd = module.state_dict()
    missing = {k: v for k, v in sd.items() if not k.endswith("running_var")}
    bad = os.path.join(WORK, f"{name}.missing.safetensors")
    torch_load.save_safetensors(bad, missing)
    r = wdlab(["eval", "--checkpoint", path, "--weights", bad], expect_ok=False)
    check(r.returncode != 0 and "running_var" in r.stderr, f"{name}: a state dict without running_var is refused "
                                                          f"({r.stderr.strip()[:120]})")
    first = next(k for k in sd if k.endswith("weight"))
    wrong = dict(sd)
    wrong[first] = sd[first].t().contiguous() if sd[first].dim() == 2 else sd[first].flatten(1)
    torch_load.save_safetensors(bad, wrong)
    r = wdlab(["eval", "--checkpoint", path, "--weights", bad], expect_ok=False)
    check(r.returncode != 0 and first in r.stderr, f"{name}: a mis-shaped {first} is refused ({r.stderr.strip()[:120]})")


def main():
    global WDLAB, WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--wdlab", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    WDLAB, WORK = a.wdlab, a.work
    fm = os.environ.get("WDLAB_FASHION_MNIST_DIR") or "/usr/share/datasets/fashion-mnist"
    if not os.path.isdir(fm):
        print(f"SKIPPED: no Fashion-MNIST in {fm} (Debian: dataset-fashion-mnist)")
        return 77
    os.makedirs(WORK, exist_ok=True)
    torch.set_num_threads(2)
    print(f"PyTorch {torch.__version__} ({torch.__file__})")
    small = ["train_subset=256", "batch_size=64", "epochs=1", "lr=0.05"]
    mlp = train("mlp", small + ["model=mlp", "arch.depth=2", "arch.width=32", "precision=double"])
    conv = train("convnet-bn", small + ["model=convnet", "arch.base_width=4", "arch.batchnorm=true"])
    res = train("resnet-bn", small + ["model=resnet8", "arch.width_mult=0.25", "arch.batchnorm=true"])
    sgd = train("mlp-sgd", ["train_subset=64", "batch_size=64", "epochs=2", "lr=0.1", "model=mlp", "arch.depth=1",
                            "arch.width=16", "optimizer=sgd", "momentum=0.9", "regularization=l2",
                            "weight_decay=0.01"])
    module, transform, p, _, _ = compare_logits("mlp (double)", ckpt(mlp, 1))
    check_jacobian(ckpt(mlp, 1), module, transform, p)
    module, transform, _, x, y = compare_logits("convnet-bn (float)", ckpt(conv, 1))
    check_reverse("convnet-bn", ckpt(conv, 1), module, transform, x, y)
    compare_logits("resnet8-bn (float)", ckpt(res, 1))
    check_sgd_step(sgd)
    print(f"{len(failures)} failed" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
