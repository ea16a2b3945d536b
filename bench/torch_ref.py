#!/usr/bin/python3
"""The reference: the same conv preset and recipe in Debian's PyTorch,
measured the way bench_core measures ours. Prints JSON.

    /usr/bin/python3 bench/torch_ref.py THREADS SECONDS_PER_CASE
"""
import json, os, sys, time

try:
    import torch
    from torch import nn
except ImportError:
    sys.exit("torch_ref: PyTorch is missing: apt-get install python3-torch")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from make_fixture import conv_preset  # noqa: E402


SLICES = 9


def rate(fn, b, secs):
    """Images/s of fn at batch b: the median of SLICES equal slices of secs,
    as bench_core measures ours, so a burst of load on the shared host moves
    either side less than a mean would."""
    fn(b)
    rates = []
    for _ in range(SLICES):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < secs / SLICES:
            fn(b)
            n += b
        rates.append(n / (time.perf_counter() - t0))
    return sorted(rates)[SLICES // 2]


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else os.cpu_count()
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    m = conv_preset()
    x = torch.rand(256, 1, 28, 28)
    out = {"threads": threads, "torch_version": torch.__version__}
    m.eval()
    with torch.no_grad():
        for b in (1, 32, 256):
            out[f"encode_b{b}_img_s"] = rate(lambda n: m.encoder(x[:n]), b, secs)
            out[f"reconstruct_b{b}_img_s"] = rate(lambda n: m.decoder(m.encoder(x[:n])), b, secs)
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)

    def step(n):
        opt.zero_grad()
        xb = x[:n]
        loss = nn.functional.mse_loss(m.decoder(m.encoder(xb)), xb)
        loss.backward()
        opt.step()

    out["train_b32_img_s"] = rate(step, 32, 2 * secs)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
