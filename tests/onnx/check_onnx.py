#!/usr/bin/python3
"""The reference check of exported ONNX files with the `onnx` package
(Debian's python3-onnx), for tests/it_onnx.sh:

    /usr/bin/python3 tests/onnx/check_onnx.py MODEL ONNXDIR [MODEL ONNXDIR]...

For each of ONNXDIR/{encoder,decoder,autoencoder}.onnx: onnx.checker's
full check (the model, then shape inference over every node), the
declared opset and IR version, metadata_props equal to the model file's
__metadata__, and every initializer named and shaped as the file's tensor
of that name with the same bytes. Prints one line per file; exits 1 on
any failure.
"""
import json
import struct
import sys

import numpy as np
import onnx
from onnx import checker, numpy_helper

DTYPES = {"F32": np.float32, "I64": np.int64}


def read_model_file(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    meta = hdr.pop("__metadata__")
    data = b[8 + n:]
    tensors = {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]],
                                dtype=DTYPES[v["dtype"]]).reshape(v["shape"]) for k, v in hdr.items()}
    return tensors, meta


def check(model_path, onnx_dir):
    tensors, meta = read_model_file(model_path)
    bad = 0
    for part in ("encoder", "decoder", "autoencoder"):
        path = f"{onnx_dir}/{part}.onnx"
        m = onnx.load(path)
        problems = []
        try:
            checker.check_model(m, full_check=True)
        except Exception as e:  # the checker's own exception types vary by version
            problems.append(f"checker: {e}")
        if [(o.domain, o.version) for o in m.opset_import] != [("", 13)] or m.ir_version != 7:
            problems.append(f"opset {m.opset_import} IR {m.ir_version}")
        props = {p.key: p.value for p in m.metadata_props}
        if props != meta:
            problems.append(f"metadata_props differ from the file's: {sorted(set(props) ^ set(meta))}")
        for init in m.graph.initializer:
            a = numpy_helper.to_array(init)
            if init.name.endswith(".shape"):
                continue
            t = tensors.get(init.name)
            if t is None or t.shape != a.shape or t.tobytes() != a.tobytes():
                problems.append(f"initializer {init.name} is not the file's tensor")
        n_init = len([i for i in m.graph.initializer if not i.name.endswith(".shape")])
        print(f"{path}: onnx {onnx.__version__} full check {'failed' if problems else 'passed'}; "
              f"{len(m.graph.node)} nodes, {n_init} initializers equal to the model file's tensors, "
              f"{len(props)} metadata_props equal to its metadata")
        for p in problems:
            print(f"FAILED: {path}: {p}", file=sys.stderr)
        bad += bool(problems)
    return bad


def main(args):
    if len(args) < 2 or len(args) % 2:
        sys.exit(__doc__)
    bad = sum(check(args[i], args[i + 1]) for i in range(0, len(args), 2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
