#!/usr/bin/python3
"""A wdlab checkpoint as a torch.nn.Module, with its recorded input pipeline.

    /usr/bin/python3 scripts/torch_load.py CHECKPOINT [--split test] [--limit N] [--data-dir DIR]
                                           [--dump-logits FILE] [--format table|json]

Needs Debian's python3-torch only (run it with /usr/bin/python3). As a library:

    import torch_load
    module, transform = torch_load.load("runs/x/checkpoints/epoch-0004.safetensors")
    images, labels = torch_load.read_split(torch_load.pipeline(path), "test")   # float32 in [0, 1]
    logits = module(transform(images))

What it reads from the checkpoint's safetensors metadata (README "Use a checkpoint in PyTorch"):
  network         the layer graph wdlab ran (kind, name, inputs, shapes): the module is built from it,
                  with PyTorch's state_dict names, and the parameters load strictly;
  input_pipeline  the data set, its directory, split sizes, layout NCHW and the per-channel mean/std
                  that wdlab applied: x = float32((float32(byte/255) - mean_c) * (1/std_c)), the
                  arithmetic in double, which `transform` repeats bit for bit;
  precision       float (float32) or double (float64): the module's dtype.
The reverse: save_safetensors(path, module.state_dict()) writes a file `wdlab eval --weights` reads.
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

_DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32}
_NAMES = {v: k for k, v in _DTYPES.items()}


class CheckpointError(Exception):
    """A file that is not what this script reads; the message names the file and the field."""


# --- safetensors: 8-byte little-endian header length, JSON header, raw little-endian data -------

def read_safetensors(path):
    """(tensors: name -> torch.Tensor, metadata: dict of str -> str)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise CheckpointError(f"{path}: {len(raw)} bytes, too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise CheckpointError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    data = raw[8 + n:]
    tensors = {}
    for name, e in header.items():
        if e["dtype"] not in _DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r} has dtype {e['dtype']}, expected one of {sorted(_DTYPES)}")
        b, end = e["data_offsets"]
        dt = _DTYPES[e["dtype"]]
        t = torch.frombuffer(bytearray(data[b:end]), dtype=dt) if end > b else torch.empty(0, dtype=dt)
        tensors[name] = t.reshape(e["shape"])
    return tensors, meta


def save_safetensors(path, tensors, metadata=None):
    """Writes name -> tensor (float32/float64/int64) as safetensors: row-major, little-endian."""
    if sys.byteorder != "little":
        raise RuntimeError("save_safetensors writes little-endian data and runs on little-endian hosts only")
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        if t.dtype not in _NAMES:
            raise CheckpointError(f"tensor {name!r}: dtype {t.dtype} is not written (float32, float64, int64)")
        blob = t.numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def _json_field(meta, key, path):
    if key not in meta:
        raise CheckpointError(f"{path}: metadata has no {key!r} (written by a wdlab before the input pipeline "
                              f"was recorded? retrain, or evaluate it with wdlab eval)")
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: metadata {key!r} is not JSON: {e}") from None


def pipeline(path):
    """The checkpoint's recorded input pipeline (a dict; README lists its fields)."""
    _, meta = read_safetensors(path)
    return _json_field(meta, "input_pipeline", path)


# --- the module -----------------------------------------------------------------------------------

class WdlabNet(nn.Module):
    """The network of a wdlab NetworkSpec: layers in order, each reading earlier outputs (-1 = input).
    Submodules sit at their PyTorch names ("features.0", "layer1.0.conv1", "fc"), so state_dict()
    has wdlab's tensor names; BN layers have affine=False unless the spec says affine."""

    def __init__(self, network):
        super().__init__()
        self.spec = network
        self._ops = []
        kinds = [l["kind"] for l in network["layers"]]
        for i, l in enumerate(network["layers"]):
            k = l["kind"]
            if k == "dense":
                m = nn.Linear(l["in"][0] * l["in"][1] * l["in"][2], l["out"][0], bias=l["bias"])
            elif k == "conv2d":
                m = nn.Conv2d(l["in"][0], l["out"][0], l["kernel"], stride=l["stride"], padding=l["pad"], bias=l["bias"])
            elif k == "batchnorm":
                after_dense = all(j >= 0 and kinds[j] == "dense" for j in l["inputs"])
                bn = nn.BatchNorm1d if after_dense else nn.BatchNorm2d
                # PyTorch's momentum weighs the batch: running = (1 - m)·running + m·batch.
                m = bn(l["out"][0], eps=l["bn_eps"], momentum=1.0 - l["bn_momentum"], affine=l["affine"])
            else:
                m = None
            if m is not None:
                self._place(l["name"], m)
            self._ops.append((k, l, m))

    def _place(self, name, module):
        parts = name.split(".")
        parent = self
        for p in parts[:-1]:
            if not hasattr(parent, p):
                parent.add_module(p, nn.Module())
            parent = getattr(parent, p)
        parent.add_module(parts[-1], module)

    def forward(self, x):
        outs = []
        for k, l, m in self._ops:
            ins = [x if j < 0 else outs[j] for j in l["inputs"]]
            h = ins[0]
            if k == "dense":
                y = m(h.flatten(1) if h.dim() > 2 else h)
            elif k in ("conv2d", "batchnorm"):
                y = m(h)
            elif k == "relu":
                y = F.relu(h)
            elif k == "maxpool":
                y = F.max_pool2d(h, l["kernel"], l["stride"])
            elif k == "global_avgpool":
                y = h.mean(dim=(2, 3), keepdim=True)
            elif k == "flatten":
                y = h.flatten(1)
            elif k == "residual_add":
                y = ins[0] + ins[1]
            else:
                raise CheckpointError(f"layer {l.get('name') or k}: kind {k!r} is not known to torch_load.py")
            outs.append(y)
        y = outs[-1]
        return y.flatten(1) if y.dim() > 2 else y


def build_module(network, dtype=torch.float32):
    return WdlabNet(network).to(dtype)


def state_dict_of(tensors, module, path="checkpoint"):
    """The model's tensors of a checkpoint (no optim.*), with num_batches_tracked added for BN
    (wdlab does not count batches; the value does not enter evaluation) so a strict load can
    check every name and shape."""
    sd = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    for name, buf in module.state_dict().items():
        if name.endswith("num_batches_tracked") and name not in sd:
            sd[name] = torch.zeros((), dtype=torch.int64)
    return sd


class Transform:
    """x (N×C×H×W float32 in [0, 1], byte/255) -> float32((x - mean_c) * (1/std_c)) in double:
    the normalization wdlab applied, bit for bit."""

    def __init__(self, p):
        norm = p["normalization"]
        self.mean = torch.tensor(norm["mean"], dtype=torch.float64).view(1, -1, 1, 1)
        self.inv_std = 1.0 / torch.tensor(norm["std"], dtype=torch.float64).view(1, -1, 1, 1)
        self.shape = (p["channels"], p["height"], p["width"])

    def __call__(self, x):
        if tuple(x.shape[1:]) != self.shape:
            raise CheckpointError(f"images of shape {tuple(x.shape[1:])}, the pipeline expects {self.shape} (NCHW)")
        return ((x.to(torch.float64) - self.mean) * self.inv_std).to(torch.float32)


def load(path):
    """(module in eval mode with the checkpoint's parameters, transform of [0,1] images)."""
    tensors, meta = read_safetensors(path)
    network = _json_field(meta, "network", path)
    p = _json_field(meta, "input_pipeline", path)
    dtype = torch.float64 if meta.get("precision") == "double" else torch.float32
    module = build_module(network, dtype)
    module.load_state_dict(state_dict_of(tensors, module, path), strict=True)
    module.eval()
    return module, Transform(p)


# --- data: the loaders' files, byte/255 as float32 ------------------------------------------------

def _read_maybe_gz(path):
    for cand in (path, path + ".gz"):
        if os.path.exists(cand):
            with (gzip.open(cand, "rb") if cand.endswith(".gz") else open(cand, "rb")) as f:
                return f.read()
    raise CheckpointError(f"{path}[.gz]: not found")


def _idx(directory, split):
    prefix = "train" if split == "train" else "t10k"
    img = _read_maybe_gz(os.path.join(directory, f"{prefix}-images-idx3-ubyte"))
    lab = _read_maybe_gz(os.path.join(directory, f"{prefix}-labels-idx1-ubyte"))
    n, h, w = struct.unpack(">III", img[4:16])
    x = torch.frombuffer(bytearray(img[16:16 + n * h * w]), dtype=torch.uint8).reshape(n, 1, h, w)
    y = torch.frombuffer(bytearray(lab[8:8 + n]), dtype=torch.uint8).to(torch.int64)
    return x, y


def _cifar(directory, split, hundred):
    if hundred:
        files, label_bytes, fine = (["train.bin"] if split == "train" else ["test.bin"]), 2, 1
    else:
        files = [f"data_batch_{b}.bin" for b in range(1, 6)] if split == "train" else ["test_batch.bin"]
        label_bytes, fine = 1, 0
    raw = b"".join(open(os.path.join(directory, f), "rb").read() for f in files)
    rec = label_bytes + 3072
    t = torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(-1, rec)
    return t[:, label_bytes:].reshape(-1, 3, 32, 32), t[:, fine].to(torch.int64)


def read_split(p, split="test", data_dir=None):
    """(images N×C×H×W float32 = byte/255, labels int64) of the recorded data set's split, cut as
    the run cut it (the first test_subset test examples). The training split: only without a
    validation hold-out (the hold-out's Philox permutation is not repeated here)."""
    d = data_dir or p["directory"]
    name = p["dataset"]
    if name in ("fashion-mnist", "mnist"):
        x, y = _idx(d, split)
    elif name in ("cifar10", "cifar100"):
        x, y = _cifar(d, split, name == "cifar100")
    else:
        raise CheckpointError(f"input_pipeline.dataset {name!r} is not read by torch_load.py")
    s = p["split"]
    if split == "train":
        if s["validation"] > 0:
            raise CheckpointError("the training split of a run with a validation hold-out is a Philox permutation "
                                  "torch_load.py does not repeat; evaluate the test split")
        n = s["train_subset"]
    else:
        n = s["test_subset"]
    if 0 < n < x.shape[0]:
        x, y = x[:n], y[:n]
    x = x.to(torch.float32) / 255.0  # float(byte) / 255.0f, correctly rounded as in wdlab
    return x, y


def evaluate(module, transform, images, labels, batch=500):
    """(logits, mean cross-entropy loss, accuracy) in the module's dtype, BN in eval mode."""
    dtype = next(module.parameters()).dtype
    out = []
    with torch.no_grad():
        for s in range(0, images.shape[0], batch):
            out.append(module(transform(images[s:s + batch]).to(dtype)))
    logits = torch.cat(out)
    loss = F.cross_entropy(logits.to(torch.float64), labels).item()
    acc = (logits.argmax(1) == labels).to(torch.float64).mean().item()
    return logits, loss, acc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--split", default="test", choices=["test", "train"])
    ap.add_argument("--limit", type=int, default=0, help="the first N examples only")
    ap.add_argument("--data-dir", default=None, help="instead of the recorded directory")
    ap.add_argument("--dump-logits", default=None, help="write the logits (safetensors, tensor 'logits')")
    ap.add_argument("--format", default="table", choices=["table", "json"])
    a = ap.parse_args(argv)
    try:
        module, transform = load(a.checkpoint)
        p = pipeline(a.checkpoint)
        x, y = read_split(p, a.split, a.data_dir)
        if a.limit > 0:
            x, y = x[:a.limit], y[:a.limit]
        logits, loss, acc = evaluate(module, transform, x, y)
    except (CheckpointError, OSError, KeyError, RuntimeError) as e:
        print(f"torch_load.py: {e}", file=sys.stderr)
        return 1
    if a.dump_logits:
        save_safetensors(a.dump_logits, {"logits": logits, "labels": y})
    if a.format == "json":
        print(json.dumps({"checkpoint": a.checkpoint, "split": a.split, "examples": int(y.shape[0]),
                          "loss": loss, "accuracy": acc}, indent=2))
    else:
        print(f"{a.checkpoint} in PyTorch {torch.__version__} on {p['dataset']} {a.split} ({y.shape[0]} examples): "
              f"loss {loss:.5f}, accuracy {acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
