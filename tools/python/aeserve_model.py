"""Our model files in PyTorch: one module for any of them, built from the
file's own metadata.

    import sys; sys.path.insert(0, "tools/python")
    import aeserve_model
    m = aeserve_model.load("models/mnist.safetensors")   # eval mode, strict
    z = m.encode(x)          # x: float32 (N, C, H, W) in [0, 1]
    y = m.decode(z)
    y = m(x)                 # reconstruct
    m.meta["ae.task"]        # the file's metadata, as strings

A model file (docs/model-format.md) is safetensors whose tensors are a
PyTorch state_dict and whose `ae.arch` metadata lists every layer (name,
type, shapes, kernel, stride, padding, slope, eps). The network is built
from that list alone, so any architecture made of our layer kinds loads
without a change here. Needs Debian's python3-torch (1.13) and numpy;
safetensors is read by hand (Debian has no python3-safetensors). Nothing
in the product needs this: it is for reference scripts and for users.
"""
import json
import math
import struct

import numpy as np
import torch
from torch import nn

DTYPES = {"F32": np.float32, "I64": np.int64, "U8": np.uint8}


def read_safetensors(path):
    """(state_dict of tensors, metadata dict of strings) of a safetensors file."""
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 8:
        raise ValueError(f"{path}: shorter than a safetensors header")
    n = struct.unpack("<Q", b[:8])[0]
    if n > len(b) - 8:
        raise ValueError(f"{path}: header length {n} past the end of the file")
    hdr = json.loads(b[8:8 + n])
    data = b[8 + n:]
    meta = hdr.pop("__metadata__", {})
    sd = {}
    for name, t in hdr.items():
        begin, end = t["data_offsets"]
        a = np.frombuffer(data[begin:end], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
        sd[name] = torch.from_numpy(a.copy())
    return sd, meta


def _layer(spec):
    """One nn module from one entry of ae.arch's `layers`."""
    kind, cin, cout = spec["type"], spec["in"], spec["out"]
    if kind == "Conv2d":
        return nn.Conv2d(cin[0], cout[0], spec["kernel"], stride=spec["stride"], padding=spec["padding"])
    if kind == "ConvTranspose2d":
        return nn.ConvTranspose2d(cin[0], cout[0], spec["kernel"], stride=spec["stride"],
                                  padding=spec["padding"], output_padding=spec["output_padding"])
    if kind == "Linear":
        return nn.Linear(math.prod(cin), cout[0])
    if kind == "ReLU":
        return nn.ReLU()
    if kind == "LeakyReLU":
        return nn.LeakyReLU(spec["negative_slope"])
    if kind == "Sigmoid":
        return nn.Sigmoid()
    if kind == "BatchNorm":
        return nn.BatchNorm2d(cout[0], eps=spec["eps"], momentum=0.1)
    if kind == "Flatten":
        return nn.Flatten()
    if kind == "Unflatten":
        return nn.Unflatten(1, tuple(cout))
    raise ValueError(f"layer {spec['name']}: unknown type {kind!r}")


class AutoEncoder(nn.Module):
    """The network an `ae.arch` describes: nn.Sequential `encoder` and
    `decoder` whose module paths are the layers' names ("encoder.0"), so
    the model file's tensors load into it as they are."""

    def __init__(self, arch):
        super().__init__()
        if isinstance(arch, str):
            arch = json.loads(arch)
        self.arch = arch
        self.meta = {}
        parts = {"encoder": [], "decoder": []}
        for spec in arch["layers"]:
            part, _, index = spec["name"].partition(".")
            if part not in parts or index != str(len(parts[part])):
                raise ValueError(f"layer {spec['name']} out of order in ae.arch")
            parts[part].append(_layer(spec))
        self.encoder = nn.Sequential(*parts["encoder"])
        self.decoder = nn.Sequential(*parts["decoder"])

    @property
    def input_shape(self):
        """(C, H, W) of an image."""
        return tuple(self.arch["input"])

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        return self.decode(self.encode(x))


def read_arch(path):
    """A model file's architecture (the ae.arch object), without its weights."""
    return json.loads(read_safetensors(path)[1]["ae.arch"])


def load(path, strict=True):
    """A model file as an AutoEncoder in eval mode, its tensors loaded with
    load_state_dict(strict) and its metadata in .meta."""
    sd, meta = read_safetensors(path)
    if "ae.arch" not in meta:
        raise ValueError(f"{path}: no ae.arch metadata: not a model file of ours?")
    m = AutoEncoder(meta["ae.arch"])
    # A training checkpoint's optimiser state is not the network's.
    sd = {k: v for k, v in sd.items() if not k.startswith("optim.")}
    m.load_state_dict(sd, strict=strict)
    m.meta = meta
    return m.eval()
