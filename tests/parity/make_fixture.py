#!/usr/bin/python3
"""Generates tests/fixtures/parity_conv.safetensors with Debian's python3-torch.

Run once (`/usr/bin/python3 tests/parity/make_fixture.py`); the C test
tests/test_parity.c reads the result without torch. It holds, for the `conv`
preset (1x28x28, latent 16) in PyTorch:
  - the initial parameters (state_dict names), an input batch of real
    Fashion-MNIST test images, the train-mode output, the MSE loss and every
    parameter gradient;
  - for each of 3 Adam steps (lr 1e-3) on that batch: the loss, every
    gradient, and the parameters and running statistics after the step;
  - the eval-mode latent codes and reconstruction after those steps.
"""
import gzip, json, os, struct, sys

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "python"))
import aeserve_model  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "parity_conv.safetensors")
ARCH_FROM = os.path.join(HERE, "..", "..", "models", "fashion.safetensors")
IDX = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def conv_preset():
    """The conv preset at 1x28x28, latent 16, built by tools/python/aeserve_model.py
    from the layer list of a model file of that architecture (the shipped
    Fashion-MNIST model's: only its ae.arch is read, not its weights)."""
    arch = aeserve_model.read_arch(ARCH_FROM)
    assert arch["preset"] == "conv" and arch["input"] == [1, 28, 28] and arch["latent"] == 16, arch
    return aeserve_model.AutoEncoder(arch)


def read_images(n):
    with gzip.open(IDX, "rb") as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 0x803
        raw = np.frombuffer(f.read(n * rows * cols), dtype=np.uint8)
    return torch.from_numpy(raw.reshape(n, 1, rows, cols).astype(np.float32) / 255.0)


def save_safetensors(path, tensors):
    header, blobs, at = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        b = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def main():
    torch.manual_seed(7)
    torch.set_num_threads(1)
    m = conv_preset()
    out = {}
    for k, v in m.state_dict().items():
        out["init." + k] = v.clone()
    x = read_images(8)
    out["x"] = x
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    m.train()
    for step in range(3):
        opt.zero_grad()
        y = m.decoder(m.encoder(x))
        loss = nn.functional.mse_loss(y, x)
        loss.backward()
        if step == 0:
            out["y"] = y.detach().clone()
        out["s%d.loss" % step] = loss.detach().reshape(1).clone()
        for k, p in m.named_parameters():
            out["s%d.grad.%s" % (step, k)] = p.grad.clone()
        opt.step()
        for k, v in m.state_dict().items():
            out["s%d.after.%s" % (step, k)] = v.clone()
    m.eval()
    with torch.no_grad():
        z = m.encoder(x)
        out["eval_z"] = z
        out["eval_y"] = m.decoder(z)
    save_safetensors(OUT, out)
    print("wrote", OUT, "loss", float(out["s0.loss"]))


if __name__ == "__main__":
    sys.exit(main())
