#!/usr/bin/python3
"""The PyTorch side of the side-by-side benchmark: the same work as `distbp train`.

Full Fashion-MNIST (IDX .gz files), per-feature standardisation with the training split's mean and std (constant
features get std 1, as distbp does), MLP 784-256-128-10 with ReLU, softmax cross-entropy, SGD with momentum,
global-norm clipping, drop-last batches from a seeded permutation per epoch. Timing covers the training steps only
(no data loading, no evaluation), as distbp's train_seconds does. Prints one JSON object.

Run with Debian's interpreter: /usr/bin/python3 bench/pytorch_reference.py --data /usr/share/datasets/fashion-mnist
"""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 0x803:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows * cols).astype(np.float32)
    return np.frombuffer(data, dtype=np.uint8, offset=8).astype(np.int64)


def find(folder, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.exists(path):
            return path
    raise SystemExit(f"missing {name} in {folder}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--layers", default="784-256-128-10")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="0 = PyTorch's default")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    x_train = read_idx(find(a.data, "train-images-idx3-ubyte"))
    y_train = read_idx(find(a.data, "train-labels-idx1-ubyte"))
    x_test = read_idx(find(a.data, "t10k-images-idx3-ubyte"))
    y_test = read_idx(find(a.data, "t10k-labels-idx1-ubyte"))
    mean = x_train.astype(np.float64).mean(axis=0)
    std = x_train.astype(np.float64).std(axis=0)
    std[std < 1e-6] = 1.0
    x_train = torch.from_numpy(((x_train - mean) / std).astype(np.float32))
    x_test = torch.from_numpy(((x_test - mean) / std).astype(np.float32))
    y_train = torch.from_numpy(y_train)
    y_test = torch.from_numpy(y_test)

    widths = [int(w) for w in a.layers.split("-")]
    layers = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)

    steps_per_epoch = len(x_train) // a.batch
    train_seconds = 0.0
    steps = 0
    loss = torch.tensor(0.0)
    for epoch in range(a.epochs):
        perm = torch.randperm(len(x_train))
        model.train()
        start = time.perf_counter()
        for s in range(steps_per_epoch):
            idx = perm[s * a.batch:(s + 1) * a.batch]
            xb, yb = x_train[idx], y_train[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            if a.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
            opt.step()
            steps += 1
        train_seconds += time.perf_counter() - start

    model.eval()
    with torch.no_grad():
        logits = model(x_test)
        test_loss = loss_fn(logits, y_test).item()
        test_accuracy = (logits.argmax(dim=1) == y_test).float().mean().item()
    print(json.dumps({
        "framework": f"pytorch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "samples_per_second": steps * a.batch / train_seconds,
        "train_seconds": train_seconds,
        "steps": steps,
        "epochs": a.epochs,
        "global_batch": a.batch,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "final_train_loss": loss.item(),
    }))


if __name__ == "__main__":
    main()
