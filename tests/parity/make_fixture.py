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
OUT = os.path.join(HERE, "..", "fixtures", "parity_conv.safetensors")
IDX = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def conv_preset(c=1, latent=16, f1=32, f2=64, h=28, w=28, slope=0.2):
    enc = nn.Sequential(
        nn.Conv2d(c, f1, 3, stride=2, padding=1), nn.LeakyReLU(slope), nn.BatchNorm2d(f1),
        nn.Conv2d(f1, f2, 3, stride=2, padding=1), nn.LeakyReLU(slope), nn.BatchNorm2d(f2),
        nn.Flatten(), nn.Linear(f2 * (h // 4) * (w // 4), latent))
    dec = nn.Sequential(
        nn.Linear(latent, f2 * (h // 4) * (w // 4)), nn.Unflatten(1, (f2, h // 4, w // 4)),
        nn.ConvTranspose2d(f2, f2, 3, stride=2, padding=1, output_padding=1), nn.LeakyReLU(slope),
        nn.BatchNorm2d(f2),
        nn.ConvTranspose2d(f2, f1, 3, stride=2, padding=1, output_padding=1), nn.LeakyReLU(slope),
        nn.BatchNorm2d(f1),
        nn.ConvTranspose2d(f1, c, 3, stride=1, padding=1), nn.Sigmoid())
    m = nn.Module()
    m.encoder, m.decoder = enc, dec
    return m


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
