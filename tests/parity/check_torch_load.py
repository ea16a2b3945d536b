#!/usr/bin/python3
"""Our model files in PyTorch (tools/python/aeserve_model.py) against our
engine, for tests/it_onnx.sh:

    /usr/bin/python3 tests/parity/check_torch_load.py TOL MODEL REFDIR[,REFDIR...] [MODEL REFDIRS]...

Each MODEL is loaded with load_state_dict(strict=True) and, in eval mode,
encodes REFDIR/x.f32, decodes our codes REFDIR/z.f32 and reconstructs the
images (tests/tools/onnxref run wrote the inputs and our answers). Prints
the largest absolute difference from ours; fails when it is over TOL
times max(1, the largest magnitude of the tensor compared), as the ONNX
Runtime check does (tests/onnx/check.mjs says why).
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "python"))
import aeserve_model  # noqa: E402


def diff(a, b):
    d = float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
    return d, d / max(1.0, float(np.abs(b).max()))


def check(tol, path, refs):
    m = aeserve_model.load(path, strict=True)
    c, h, w = m.input_shape
    bad = 0
    for ref in refs:
        x = np.fromfile(f"{ref}/x.f32", dtype=np.float32).reshape(-1, c, h, w)
        n = x.shape[0]
        z = np.fromfile(f"{ref}/z.f32", dtype=np.float32).reshape(n, -1)
        y = np.fromfile(f"{ref}/y.f32", dtype=np.float32).reshape(x.shape)
        r = np.fromfile(f"{ref}/r.f32", dtype=np.float32).reshape(x.shape)
        with torch.no_grad():
            code = m.encode(torch.from_numpy(x))  # a vector, or a map
            ty = m.decode(torch.from_numpy(z).reshape(code.shape)).numpy()
            tr = m(torch.from_numpy(x)).numpy()
        d = {"encode": diff(code.reshape(n, -1).numpy(), z), "decode": diff(ty, y), "forward": diff(tr, r)}
        worst = max(v[1] for v in d.values())
        print(f"{path} batch {n}: load_state_dict(strict=True) ok; max |torch - ours| "
              + ", ".join(f"{k} {v[0]:.2e}" for k, v in d.items()) + f" (scaled {worst:.2e})")
        if not worst <= tol:
            print(f"FAILED: {path} batch {n}: {worst:.3g} > {tol}", file=sys.stderr)
            bad += 1
    return bad


def main(args):
    if len(args) < 3 or len(args) % 2 != 1:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    tol = float(args[0])
    bad = sum(check(tol, args[i], args[i + 1].split(",")) for i in range(1, len(args), 2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
