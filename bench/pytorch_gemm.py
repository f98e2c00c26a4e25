#!/usr/bin/python3
"""OpenBLAS sgemm (through PyTorch, one thread) on the same shapes as GemmBenchmarks.

Run: /usr/bin/python3 bench/pytorch_gemm.py
Prints one row per shape: median ns per product and GFLOP/s = 2*rows*inner*cols / median.
Uses torch.mm(a, b, out=c) on contiguous float32 row-major tensors, like Gemm.Multiply.
"""
import ctypes
import os
import statistics
import time

# torch.set_num_threads covers torch's own pool; Debian's torch calls the system BLAS (OpenBLAS pthread),
# which has its own pool, so pin that to one thread too (must happen before the library loads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


def shapes():
    for n in (32, 64, 128):
        yield "Fwd1", n, 784, 256
        yield "Fwd2", n, 256, 128
        yield "Fwd3", n, 128, 10
        yield "WGrad1", 784, n, 256
        yield "WGrad2", 256, n, 128
        yield "WGrad3", 128, n, 10
        yield "IGrad2", n, 128, 256
        yield "IGrad3", n, 10, 128


def measure(rows, inner, cols, rounds=15, min_round_s=0.1, transposed_a=False):
    g = torch.Generator().manual_seed(42)
    # transposed_a: A is the transpose of a contiguous inner×rows X (what autograd does for a weight gradient: mm(x.t(), dy))
    a = (torch.rand(inner, rows, generator=g) - 0.5).t() if transposed_a else torch.rand(rows, inner, generator=g) - 0.5
    b = torch.rand(inner, cols, generator=g) - 0.5
    c = torch.empty(rows, cols)
    # Calibrate the inner repeat count so one round lasts about min_round_s.
    reps = 1
    while True:
        t0 = time.perf_counter_ns()
        for _ in range(reps):
            torch.mm(a, b, out=c)
        dt = time.perf_counter_ns() - t0
        if dt >= min_round_s * 1e9:
            break
        reps *= 2
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(reps):
            torch.mm(a, b, out=c)
        samples.append((time.perf_counter_ns() - t0) / reps)
    return statistics.median(samples)


def main():
    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}")
    torch.mm(torch.ones(8, 8), torch.ones(8, 8))  # load the BLAS before looking for it
    blas = [line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line]
    if blas:
        lib = ctypes.CDLL(blas[0])
        lib.openblas_get_config.restype = ctypes.c_char_p
        print(f"BLAS: {blas[0]} ({lib.openblas_get_config().decode()}), threads={lib.openblas_get_num_threads()}")
    else:
        print("BLAS: no OpenBLAS mapped (check torch.__config__.show())")
    print(f"{'shape':<24}{'median ns':>14}{'GFLOP/s':>10}")
    for name, rows, inner, cols in shapes():
        ns = measure(rows, inner, cols)
        print(f"{name + ' ' + f'{rows}x{inner}x{cols}':<24}{ns:>14.1f}{2.0 * rows * inner * cols / ns:>10.1f}")
    # The weight gradient with X read in place, as WeightGradientBenchmarks (slices of 32).
    for name, rows, inner, cols in [("WGrad1", 784, 32, 256), ("WGrad2", 256, 32, 128), ("WGrad3", 128, 32, 10)]:
        ns = measure(rows, inner, cols, transposed_a=True)
        print(f"{name + ' Xt ' + f'{rows}x{inner}x{cols}':<24}{ns:>14.1f}{2.0 * rows * inner * cols / ns:>10.1f}")


if __name__ == "__main__":
    main()
