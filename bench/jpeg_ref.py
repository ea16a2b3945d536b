#!/usr/bin/python3
"""The JPEG side of the compression table (bench/compression.sh): every test
image of an IDX file as a grayscale JPEG (Pillow, libjpeg-turbo underneath,
optimized Huffman tables) at each quality 1..95, and the mean bytes and the
PSNR of the mean MSE (as `aetrain eval --codes` reports). Prints JSON.

    /usr/bin/python3 bench/jpeg_ref.py IMAGES-IDX[.gz] [LIMIT]
"""
import gzip, io, json, math, struct, sys

try:
    import numpy as np
    from PIL import Image
except ImportError:
    sys.exit("jpeg_ref: needs python3-pil and python3-numpy")


def read_idx(path, limit):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 0x803, "not an IDX images file"
        n = min(n, limit) if limit else n
        return np.frombuffer(f.read(n * rows * cols), dtype=np.uint8).reshape(n, rows, cols)


def main():
    imgs = read_idx(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    ref = imgs.astype(np.float64) / 255.0
    out = []
    for q in range(1, 96):
        total, sq = 0, 0.0
        for i, im in enumerate(imgs):
            buf = io.BytesIO()
            Image.fromarray(im, "L").save(buf, "JPEG", quality=q, optimize=True)
            total += buf.tell()
            back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"), dtype=np.float64) / 255.0
            sq += ((back - ref[i]) ** 2).sum()
        mse = sq / ref.size
        out.append({"quality": q, "bytes": total / len(imgs), "mse": mse, "psnr_db": 10 * math.log10(1 / mse)})
    print(json.dumps({"images": len(imgs), "pillow": Image.__version__, "qualities": out}))


if __name__ == "__main__":
    main()
