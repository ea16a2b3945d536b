#!/usr/bin/python3
"""The service a user would otherwise write: the same model in PyTorch behind
FastAPI/uvicorn, answering the two routes `make bench` loads, the way
aeserve answers them (JSON latent code; PNG reconstruction).

    AE_MODEL=models/mnist.safetensors /usr/bin/python3 -m uvicorn torch_serve:app \
        --app-dir bench --port 8091 --workers 2

Needs Debian's python3-torch, python3-fastapi, python3-uvicorn, python3-pil.
"""
import io, os, sys

import numpy as np
import torch
from fastapi import FastAPI, Request, Response
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "python"))
import aeserve_model  # noqa: E402

# One thread per uvicorn worker process: the workers are the parallelism.
torch.set_num_threads(1)
PATH = os.environ.get("AE_MODEL", os.path.join(HERE, "..", "models", "mnist.safetensors"))
NAME = os.path.basename(PATH).split(".")[0]
model = aeserve_model.load(PATH)
C, H, W = model.input_shape

app = FastAPI()


def read_png(body):
    img = Image.open(io.BytesIO(body)).convert("L" if C == 1 else "RGB")
    a = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(a.reshape(H, W, C).transpose(2, 0, 1).copy()).unsqueeze(0)


@app.post("/v1/encode")
async def encode(request: Request):
    x = read_png(await request.body())
    with torch.no_grad():
        z = model.encoder(x)
    return {"model": NAME, "op": "encode", "shape": list(z.shape), "data": z[0].tolist()}


@app.post("/v1/reconstruct")
async def reconstruct(request: Request):
    x = read_png(await request.body())
    with torch.no_grad():
        y = model.decoder(model.encoder(x))
    a = (y[0].numpy().transpose(1, 2, 0) * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a[:, :, 0] if C == 1 else a).save(buf, format="PNG")
    return Response(buf.getvalue(), media_type="image/png")
