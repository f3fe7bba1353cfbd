#!/usr/bin/python3
"""PyTorch DistributedDataParallel (Gloo) on the Fashion-MNIST epoch of distributed_bench.

The same model (784-256-128-10, ReLU), optimiser (SGD, lr 0.05, momentum 0.9), global batch and
sample order (written by `distributed_bench --dump-order FILE`; process r takes positions
r, r + N, ... of it, as xgrad's DistributedSampler does), N processes of one thread each on this
machine. Prints one JSON line per global batch: {"batch": B, "processes": N, "seconds": [...]},
the wall time of each epoch, between barriers, on process 0.

    /usr/bin/python3 benchmarks/peers/torch_ddp.py --order order.npy --batch 64 256
"""
import argparse
import gzip
import json
import os
import socket
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

DATA = "/usr/share/datasets/fashion-mnist"


def load():
    with gzip.open(os.path.join(DATA, "train-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(os.path.join(DATA, "train-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return (torch.from_numpy(images.astype(np.float32) / 255.0),
            torch.from_numpy(labels.astype(np.int64)))


def worker(rank, world, port, order, batches, repeats, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    x, y = load()
    share = torch.from_numpy(order[rank::world].astype(np.int64))
    results = []
    for batch in batches:
        per_process = batch // world
        times = []
        for _ in range(repeats):
            torch.manual_seed(0)
            model = DistributedDataParallel(torch.nn.Sequential(
                torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                torch.nn.ReLU(), torch.nn.Linear(128, 10)))
            opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
            dist.barrier()
            start = time.perf_counter()
            for first in range(0, len(share), per_process):
                idx = share[first:first + per_process]
                xb, yb = x.index_select(0, idx), y.index_select(0, idx)
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
            dist.barrier()
            times.append(time.perf_counter() - start)
        results.append({"batch": batch, "processes": world, "seconds": times})
    if rank == 0:
        with open(out, "w") as f:
            json.dump(results, f)
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", required=True, help=".npy of sample indices (one epoch)")
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    order = np.load(args.order).astype(np.int64)
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = f"/tmp/torch_ddp_{os.getpid()}.json"
    mp.spawn(worker, args=(args.processes, port, order, args.batch, args.repeats, out),
             nprocs=args.processes)
    with open(out) as f:
        for row in json.load(f):
            print(json.dumps(row))
    os.remove(out)


if __name__ == "__main__":
    main()
