"""Shared helpers for the example-model scripts: deterministic training setup, ONNX export with a
dynamic batch dimension, and the reference inputs/outputs (computed by PyTorch) that the engine's
tests compare against. Run the scripts with /usr/bin/python3 (they need python3-torch and
python3-sklearn; the tests never do)."""
import json
import os
import random

import numpy as np
import onnx
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17


def seed_everything(seed=20261126):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # bit-for-bit reproducible training on any machine


def export(model, name, example_inputs, input_names, output_names, dynamic_axes, metrics, notes):
    """Exports model to examples/models/<name>/model.onnx and writes the reference
    inputs/outputs (PyTorch, eval mode) next to it as <tensor name>.npy files."""
    out_dir = os.path.join(HERE, name)
    os.makedirs(out_dir, exist_ok=True)
    model.eval()
    path = os.path.join(out_dir, "model.onnx")
    with torch.inference_mode():
        torch.onnx.export(model, tuple(example_inputs), path, opset_version=OPSET,
                          input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    m.producer_name = "sluice-examples"
    m.doc_string = notes
    onnx.save(m, path)
    size = os.path.getsize(path)
    assert size < 1 << 20, f"{path} is {size} bytes; examples must stay under 1 MiB"
    with torch.inference_mode():
        outs = model(*example_inputs)
    if not isinstance(outs, (tuple, list)):
        outs = (outs,)
    ref = os.path.join(out_dir, "reference")
    os.makedirs(ref, exist_ok=True)
    for n, t in zip(input_names, example_inputs):
        np.save(os.path.join(ref, f"input.{n}.npy"), t.numpy())
    for n, t in zip(output_names, outs):
        np.save(os.path.join(ref, f"output.{n}.npy"), t.numpy())
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump({"opset": OPSET, "onnx_bytes": size, **metrics}, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"{name}: {size} bytes, {metrics}")


def train(model, loss_fn, x, y, epochs, lr, batch=64, weight_decay=0.0):
    """Plain Adam training loop over (x, y) tensors."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = x.shape[0]
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    model.eval()
