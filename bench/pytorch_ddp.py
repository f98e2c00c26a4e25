#!/usr/bin/python3
"""The PyTorch DDP side of the cluster benchmark: gloo backend, N processes on loopback, the same work as
`distbp simulate --nodes N`.

Each process trains on its own 1/N share of every global batch (batch per process = --batch; global batch =
N x --batch), with the same standardisation, model, optimizer and clipping as pytorch_reference.py. DDP averages
gradients with gloo allreduce. Timing covers the training steps only (rank 0's clock, after a barrier).

Run with Debian's interpreter: /usr/bin/python3 bench/pytorch_ddp.py --procs 2 --batch 256
One process of N (one per network namespace, bench/scaling.sh): --rank R --master HOST; --max-steps caps the steps
of an epoch (a short timed run on a slow link).
"""
import argparse
import json
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from pytorch_reference import find, read_idx
import numpy as np


def worker(rank, a, port):
    os.environ["MASTER_ADDR"] = a.master
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=a.procs)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    x_train = read_idx(find(a.data, "train-images-idx3-ubyte"))
    y_train = torch.from_numpy(read_idx(find(a.data, "train-labels-idx1-ubyte")))
    x_test = read_idx(find(a.data, "t10k-images-idx3-ubyte"))
    y_test = torch.from_numpy(read_idx(find(a.data, "t10k-labels-idx1-ubyte")))
    mean = x_train.astype(np.float64).mean(axis=0)
    std = x_train.astype(np.float64).std(axis=0)
    std[std < 1e-6] = 1.0
    x_train = torch.from_numpy(((x_train - mean) / std).astype(np.float32))
    x_test = torch.from_numpy(((x_test - mean) / std).astype(np.float32))

    widths = [int(w) for w in a.layers.split("-")]
    layers = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    model = DDP(nn.Sequential(*layers))
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)

    global_batch = a.batch * a.procs
    steps_per_epoch = len(x_train) // global_batch
    if a.max_steps > 0:
        steps_per_epoch = min(steps_per_epoch, a.max_steps)
    train_seconds = 0.0
    steps = 0
    step_times = []  # each step on this rank: DDP's allreduce synchronises the ranks, so it is the step's time
    loss = torch.tensor(0.0)
    for epoch in range(a.epochs):
        g = torch.Generator().manual_seed(a.seed + epoch)
        perm = torch.randperm(len(x_train), generator=g)  # same on every rank
        model.train()
        dist.barrier()
        start = time.perf_counter()
        for s in range(steps_per_epoch):
            step_start = time.perf_counter()
            first = s * global_batch + rank * a.batch
            idx = perm[first:first + a.batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            if a.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
            opt.step()
            steps += 1
            step_times.append(time.perf_counter() - step_start)
        dist.barrier()
        train_seconds += time.perf_counter() - start

    if rank == 0:
        model.eval()
        with torch.no_grad():
            logits = model.module(x_test)
            print(json.dumps({
                "framework": f"pytorch {torch.__version__} DDP gloo",
                "processes": a.procs,
                "threads_per_process": torch.get_num_threads(),
                "samples_per_second": steps * global_batch / train_seconds,
                "median_step_seconds": sorted(step_times)[len(step_times) // 2],
                "train_seconds": train_seconds,
                "steps": steps,
                "epochs": a.epochs,
                "global_batch": global_batch,
                "test_accuracy": (logits.argmax(dim=1) == y_test).float().mean().item(),
                "test_loss": loss_fn(logits, y_test).item(),
                "final_train_loss": loss.item(),
            }), flush=True)
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--layers", default="784-256-128-10")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--batch", type=int, default=256, help="per process")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per process")
    p.add_argument("--port", type=int, default=29517)
    p.add_argument("--master", default="127.0.0.1", help="rank 0's address")
    p.add_argument("--rank", type=int, default=-1, help="run only this rank (one process per host); default: spawn all")
    p.add_argument("--max-steps", type=int, default=0, help="at most this many steps per epoch (0: all)")
    a = p.parse_args()
    if a.rank >= 0:
        worker(a.rank, a, a.port)
    else:
        mp.spawn(worker, args=(a, a.port), nprocs=a.procs, join=True)


if __name__ == "__main__":
    main()
