#!/usr/bin/python3
"""Loads a model file of ours into the PyTorch module of its preset with
load_state_dict(strict=True), runs the first test digits through it in eval
mode, and compares with `aeserve`-equivalent output from `aetrain encode`.

    /usr/bin/python3 tests/parity/check_torch_load.py models/mnist.safetensors

Reads the file with nothing but the safetensors layout (Debian has no
python3-safetensors): 8-byte header length, JSON header, raw tensors.
"""
import json, os, struct, subprocess, sys, tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixture import conv_preset  # noqa: E402


def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    data = b[8 + n:]
    meta = hdr.pop("__metadata__")
    sd = {}
    for k, v in hdr.items():
        s, e = v["data_offsets"]
        dt = {"F32": np.float32, "I64": np.int64}[v["dtype"]]
        sd[k] = torch.from_numpy(np.frombuffer(data[s:e], dtype=dt).copy().reshape(v["shape"]))
    return sd, meta


def load_model(path):
    """Our model file as the PyTorch module of its preset, in eval mode."""
    sd, meta = load(path)
    arch = json.loads(meta["ae.arch"])
    c, h, w = arch["input"]
    m = conv_preset(c, arch["latent"], *arch["filters"], h, w, arch["slope"])
    m.load_state_dict(sd, strict=True)
    m.eval()
    return m, arch, len(sd)


def main(path):
    m, arch, n_tensors = load_model(path)
    raw = open("tests/fixtures/digits/t10k-images-idx3-ubyte", "rb").read()[16:16 + 8 * 784]
    x = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8).astype(np.float32).reshape(8, 1, 28, 28) / 255.0)
    with torch.no_grad():
        z = m.encoder(x).numpy()
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "z.npy")
        subprocess.run(["build/aetrain", "encode", path, "tests/fixtures/digits", "--limit", "8", "--out", out],
                       check=True, capture_output=True)
        ours = np.load(out)
    err = np.abs(ours - z).max() / np.abs(z).max()
    print(f"{path}: load_state_dict(strict=True) ok; {n_tensors} tensors; "
          f"latent codes of 8 test digits agree with PyTorch to {err:.2e} (normalised max error)")
    return 0 if err < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
