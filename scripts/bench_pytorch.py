#!/usr/bin/env python3
"""PyTorch eager baseline for `wdlab bench`: the same models, batch and math mode, CUDA events.

Models, exactly as common/model_zoo.cpp builds them (CIFAR shapes 3x32x32, 10 classes):
  vgg16[-bn]       13 conv3x3 (pad 1, bias) [+ BN] + ReLU, 2x2 max-pool after each of the 5 blocks,
                   widths 64,64 | 128,128 | 256x3 | 512x3 | 512x3, flatten, ONE dense 512->10 (bias)
  resnet32x4[-bn]  6n+2 with n = 5, widen 4: conv3x3 3->64 (bias) [+BN] + ReLU; 3 stages of 5 blocks,
                   widths 64/128/256, stride 2 at the first block of stages 2-3; block = conv3x3
                   (bias) [+BN] ReLU conv3x3 (bias) [+BN], shortcut = identity or 1x1 conv (stride,
                   bias) [+BN] where the shape changes (stages 2-3), add, ReLU; global average
                   pool, dense 256->10 (bias)
and the CPU engine's laptop models (Fashion-MNIST shapes 1x28x28, 10 classes):
  mlp              784-1000-1000-10, dense layers with bias, ReLU (`wdlab bench`'s MLP)
  convnet-bn       2 blocks of [conv3x3 (pad 1, bias) + BN + ReLU] x 2 + 2x2 max-pool, widths 32 | 64,
                   flatten, dense 3136->10 (bias): 96,362 parameters (configs/laptop/convnet-bn-*.json)
BN as the paper: no affine gamma/beta, eps 1e-3, TF momentum 0.99 (PyTorch momentum 0.01).

One step = forward, cross-entropy, backward, optimizer step (SGD momentum 0.9 / Adam), and, by
default, loss.item() (wdlab reads one scalar back per step, so both sync once per step). Timed by
CUDA events around each step; the median of --steps steps after --warmup. TF32 is pinned
explicitly (--tf32 off|on sets torch.backends.cudnn.allow_tf32 and
torch.backends.cuda.matmul.allow_tf32). cudnn.benchmark is on (algorithms chosen per shape, as
wdlab does).

  --params-only     print the models' trainable parameter counts (no GPU needed) and, with
                    --wdlab BIN, compare them with `BIN bench --model M --params-only`
  --device cpu      run the steps on the CPU (wall-clock timing); --threads N sets
                    torch.set_num_threads (the same count as `wdlab bench --threads N`)

Exit: 0 done; 1 a parameter count differs from wdlab's; 2 bad usage; 77 torch not importable
(a test's "skipped").
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # the CPU test machine may not have torch
    print(f"bench_pytorch: torch is not importable ({e}); skipped", file=sys.stderr)
    sys.exit(77)

MODELS = ["vgg16", "vgg16-bn", "resnet32x4", "resnet32x4-bn", "mlp", "convnet-bn"]
CPU_MODELS = {"mlp", "convnet-bn"}  # Fashion-MNIST shapes


def bn(channels):
    # No gamma/beta (the paper), TF eps 1e-3 and decay 0.99.
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01, affine=False)


class VGG(nn.Module):
    def __init__(self, per_block, use_bn, width_mult=1.0, classes=10):
        super().__init__()
        widths = [64, 128, 256, 512, 512]
        layers, c, hw = [], 3, 32
        for blk, n in enumerate(per_block):
            k = max(1, round(widths[blk] * width_mult))
            for _ in range(n):
                layers.append(nn.Conv2d(c, k, 3, 1, 1, bias=True))
                if use_bn:
                    layers.append(bn(k))
                layers.append(nn.ReLU(inplace=True))
                c = k
            if hw >= 2:
                layers.append(nn.MaxPool2d(2, 2))
                hw //= 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c * hw * hw, classes, bias=True)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class Block(nn.Module):
    def __init__(self, cin, k, stride, use_bn):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, k, 3, stride, 1, bias=True)
        self.bn1 = bn(k) if use_bn else nn.Identity()
        self.conv2 = nn.Conv2d(k, k, 3, 1, 1, bias=True)
        self.bn2 = bn(k) if use_bn else nn.Identity()
        self.shortcut = nn.Identity()
        if stride != 1 or cin != k:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, k, 1, stride, 0, bias=True),
                                          bn(k) if use_bn else nn.Identity())

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, depth, widen, use_bn, width_mult=1.0, classes=10):
        super().__init__()
        assert (depth - 2) % 6 == 0
        n = (depth - 2) // 6
        w = lambda c: max(1, round(c * widen * width_mult))
        self.conv1 = nn.Conv2d(3, w(16), 3, 1, 1, bias=True)
        self.bn1 = bn(w(16)) if use_bn else nn.Identity()
        blocks, cin = [], w(16)
        for stage, base in enumerate([16, 32, 64]):
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(Block(cin, w(base), stride, use_bn))
                cin = w(base)
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes, bias=True)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class MLP(nn.Module):
    def __init__(self, width=1000, depth=2, classes=10):
        super().__init__()
        layers, c = [], 784
        for _ in range(depth):
            layers += [nn.Linear(c, width, bias=True), nn.ReLU(inplace=True)]
            c = width
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(c, classes, bias=True)

    def forward(self, x):
        return self.fc(self.body(torch.flatten(x, 1)))


class ConvNet(nn.Module):
    """common/model_zoo.cpp small_convnet: [conv+BN+ReLU]x2 + pool per block, widths w, 2w."""

    def __init__(self, base_width=32, classes=10):
        super().__init__()
        layers, c, hw = [], 1, 28
        for blk in range(2):
            k = base_width << blk
            for _ in range(2):
                layers += [nn.Conv2d(c, k, 3, 1, 1, bias=True), bn(k), nn.ReLU(inplace=True)]
                c = k
            layers.append(nn.MaxPool2d(2, 2))
            hw //= 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c * hw * hw, classes, bias=True)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def input_shape(name):
    return (1, 28, 28) if name in CPU_MODELS else (3, 32, 32)


def build(name, width_mult=1.0):
    if name == "mlp":
        return MLP(max(1, round(1000 * width_mult)))
    if name == "convnet-bn":
        return ConvNet(max(1, round(32 * width_mult)))
    use_bn = name.endswith("-bn")
    base = name[:-3] if use_bn else name
    if base == "vgg16":
        return VGG([2, 2, 3, 3, 3], use_bn, width_mult)
    if base == "resnet32x4":
        return ResNet(32, 4, use_bn, width_mult)
    raise SystemExit(f"bench_pytorch: unknown model '{name}' (one of {', '.join(MODELS)})")


def num_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def wdlab_params(binary, model):
    out = subprocess.run([binary, "bench", "--model", model, "--params-only", "--format", "json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["params"]


def time_steps(model, opt_name, batch, steps, warmup, device, sync_each_step, shape=(3, 32, 32)):
    model = model.to(device).train()
    if opt_name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator(device="cpu").manual_seed(1)
    x = torch.randn(batch, *shape, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    cuda = device.type == "cuda"
    times = []
    for k in range(warmup + steps):
        if cuda:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        else:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if sync_each_step:
            loss.item()
        if cuda:
            stop.record()
            stop.synchronize()
            s = start.elapsed_time(stop) * 1e-3
        else:
            s = time.perf_counter() - t0
        if k >= warmup:
            times.append(s)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="vgg16,resnet32x4", help="comma list of " + ", ".join(MODELS))
    ap.add_argument("--batches", default="128,640,2000")
    ap.add_argument("--optimizers", default="sgd,adam")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--tf32", choices=["off", "on"], default="off")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (torch.set_num_threads); 0 = PyTorch's default")
    ap.add_argument("--width-mult", type=float, default=1.0, help="scale widths (CPU smoke runs)")
    ap.add_argument("--no-sync-each-step", action="store_true", help="leave out loss.item() per step")
    ap.add_argument("--params-only", action="store_true")
    ap.add_argument("--wdlab", help="wdlab binary: compare parameter counts with `wdlab bench --params-only`")
    ap.add_argument("--out", help="write the JSON here as well as to stdout")
    a = ap.parse_args()
    models = [m for m in a.models.split(",") if m]
    for m in models:
        if m not in MODELS:
            ap.error(f"unknown model '{m}'")
    optimizers = [o for o in a.optimizers.split(",") if o]
    for o in optimizers:
        if o not in ("sgd", "adam"):
            ap.error(f"unknown optimizer '{o}' (sgd, adam: K-FAC has no PyTorch-eager counterpart here)")
    if a.steps < 20 and a.device == "cuda":
        ap.error("--steps: a median of at least 20 steps on the GPU")

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    # TF32 pinned explicitly, whatever the PyTorch defaults are.
    torch.backends.cudnn.allow_tf32 = a.tf32 == "on"
    torch.backends.cuda.matmul.allow_tf32 = a.tf32 == "on"
    torch.backends.cudnn.benchmark = True

    result = {"framework": "pytorch", "torch": torch.__version__, "math_mode": "tf32" if a.tf32 == "on" else "fp32",
              "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
              "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
              "sync_each_step": not a.no_sync_each_step, "steps": a.steps, "warmup": a.warmup,
              "threads": torch.get_num_threads(),
              "params": {}, "results": []}
    rc = 0
    for m in models:
        n = num_params(build(m, a.width_mult))
        result["params"][m] = n
        line = f"params {m}: pytorch {n}"
        if a.wdlab:
            ours = wdlab_params(a.wdlab, m) if a.width_mult == 1.0 else None
            if ours is not None:
                same = ours == n
                line += f", wdlab {ours}: {'MATCH' if same else 'DIFFER'}"
                result.setdefault("params_wdlab", {})[m] = ours
                rc = rc if same else 1
        print(line, file=sys.stderr)
    if a.params_only:
        print(json.dumps(result, indent=2))
        return rc

    device = torch.device(a.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            print("bench_pytorch: no usable CUDA device", file=sys.stderr)
            return 2
        result["device"] = torch.cuda.get_device_name(device)
    for m in models:
        for batch in [int(b) for b in a.batches.split(",") if b]:
            for o in optimizers:
                torch.manual_seed(1)
                t = time_steps(build(m, a.width_mult), o, batch, a.steps, a.warmup, device, not a.no_sync_each_step,
                               input_shape(m))
                med = statistics.median(t)
                row = {"model": m, "optimizer": o, "batch": batch, "median_step_s": med,
                       "mean_step_s": statistics.fmean(t), "images_per_s": batch / med,
                       "timer": "cuda_events" if device.type == "cuda" else "perf_counter"}
                result["results"].append(row)
                print(f"{m:<14} {o:<5} batch {batch:>5}: median {med * 1e3:9.3f} ms, {batch / med:10.1f} images/s",
                      file=sys.stderr)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
