#!/usr/bin/python3
"""The reference: the same conv preset and recipe in Debian's PyTorch,
measured the way bench_core measures ours. Prints JSON.

    /usr/bin/python3 bench/torch_ref.py THREADS SECONDS_PER_CASE
    /usr/bin/python3 bench/torch_ref.py size C H W THREADS SECONDS_PER_CASE
    /usr/bin/python3 bench/torch_ref.py turns C H W THREADS   (lines on stdin)
    /usr/bin/python3 bench/torch_ref.py engine MODEL IDX THREADS   (lines on stdin)
"""
import json, os, resource, subprocess, sys, tempfile, time

try:
    import torch
    from torch import nn
except ImportError:
    sys.exit("torch_ref: PyTorch is missing: apt-get install python3-torch")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "python"))
import aeserve_model  # noqa: E402


def conv_preset(c=1, h=28, w=28):
    """The conv preset (latent 16, filters 32 and 64) at c x h x w, as our
    engine lays it out: tests/tools/onnxref writes a model file of it, and
    aeserve_model builds the network from that file's layer list (the
    weights are PyTorch's default initialisation, as bench_core's are)."""
    ref = os.path.join(os.environ.get("BUILD", os.path.join(HERE, "..", "build")), "tests", "tools", "onnxref")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "preset.safetensors")
        subprocess.run([ref, "random", path, "conv", str(c), str(h), str(w), "16", "32", "64", "128", "1"],
                       check=True)
        return aeserve_model.AutoEncoder(aeserve_model.read_arch(path))


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


def train_step(m, x):
    """One Adam step of the MSE reconstruction loss on the first n images."""
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)

    def step(n):
        opt.zero_grad()
        xb = x[:n]
        loss = nn.functional.mse_loss(m.decoder(m.encoder(xb)), xb)
        loss.backward()
        opt.step()

    return step


def size_case(c, h, w, threads, secs):
    """The preset at c x h x w, as bench_core size: reconstruct and training
    images/s at batch 32, and this process's peak RSS."""
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    m = conv_preset(c=c, h=h, w=w)
    x = torch.rand(32, c, h, w)
    out = {"c": c, "h": h, "w": w, "threads": threads, "torch_version": torch.__version__}
    m.eval()
    with torch.no_grad():
        out["reconstruct_b32_img_s"] = rate(lambda n: m.decoder(m.encoder(x[:n])), 32, secs)
    m.train()
    out["train_b32_img_s"] = rate(train_step(m, x), 32, 2 * secs)
    out["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(out))


TURN_MIN_BATCHES = 3


def turn_rate(fn, secs):
    """One turn, as bench_core's: batches of 32 for secs (at least
    TURN_MIN_BATCHES), and their images/s over the turn."""
    n, t0 = 0, time.perf_counter()
    while n < TURN_MIN_BATCHES or time.perf_counter() - t0 < secs:
        fn(32)
        n += 1
    return 32 * n / (time.perf_counter() - t0)


def turns_case(c, h, w, threads):
    """The preset at c x h x w, measured on request as bench_core turns:
    each line on stdin, "reconstruct SECS" or "train SECS", prints that
    turn's images/s; "rss" prints the peak RSS in KB."""
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    m = conv_preset(c=c, h=h, w=w)
    x = torch.rand(32, c, h, w)
    step = train_step(m, x)

    def reconstruct(n):
        with torch.no_grad():
            m.decoder(m.encoder(x[:n]))

    ops = {"reconstruct": (m.eval, reconstruct), "train": (m.train, step)}
    for mode, fn in ops.values():  # first touches, as bench_core's
        mode()
        fn(32)
    for line in sys.stdin:
        words = line.split()
        if words == ["rss"]:
            print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
        elif len(words) == 2 and words[0] in ops:
            mode, fn = ops[words[0]]
            mode()
            print(f"{turn_rate(fn, float(words[1])):.2f}", flush=True)
        else:
            sys.exit(f"torch_ref turns: unknown request {line!r}")


ENGINE_MAX_BATCH = 256


def engine_case(path, idx, threads):
    """A model file of ours in PyTorch (eval mode), measured on request as
    bench_core engine: "ready", "OP B SECS" (images/s of a turn of batches of
    B, OP encode or reconstruct), "dump OP B PATH" (float32 output)."""
    import numpy as np
    torch.set_num_threads(threads)
    m = aeserve_model.load(path)
    c, h, w = m.input_shape
    raw = open(idx, "rb").read()[16:]
    n = min(100, len(raw) // (c * h * w))
    imgs = np.frombuffer(raw[:n * c * h * w], dtype=np.uint8).reshape(n, c, h, w).astype(np.float32) / 255.0
    x = torch.from_numpy(imgs[np.arange(ENGINE_MAX_BATCH) % n].copy())
    ops = {"encode": lambda k: m.encoder(x[:k]), "reconstruct": lambda k: m.decoder(m.encoder(x[:k]))}
    with torch.no_grad():
        for fn in ops.values():
            fn(ENGINE_MAX_BATCH)
        for line in sys.stdin:
            words = line.split()
            if words == ["ready"]:
                print("ready", flush=True)
            elif len(words) == 3 and words[0] in ops:
                b, secs, k = int(words[1]), float(words[2]), 0
                t0 = time.perf_counter()
                while k < TURN_MIN_BATCHES or time.perf_counter() - t0 < secs:
                    ops[words[0]](b)
                    k += 1
                print(f"{b * k / (time.perf_counter() - t0):.2f}", flush=True)
            elif len(words) == 4 and words[0] == "dump" and words[1] in ops:
                ops[words[1]](int(words[2])).numpy().astype("<f4").tofile(words[3])
                print("ok", flush=True)
            else:
                sys.exit(f"torch_ref engine: unknown request {line!r}")


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "engine":
        return engine_case(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    if len(sys.argv) == 6 and sys.argv[1] == "turns":
        return turns_case(*(int(a) for a in sys.argv[2:6]))
    if len(sys.argv) == 7 and sys.argv[1] == "size":
        c, h, w, threads = (int(a) for a in sys.argv[2:6])
        return size_case(c, h, w, threads, float(sys.argv[6]))
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
    out["train_b32_img_s"] = rate(train_step(m, x), 32, 2 * secs)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
