#!/usr/bin/python3
"""Runs xgrad's benchmarks and their libtorch peers side by side and prints Markdown tables.

    benchmarks/compare.py BUILD_DIR [--rounds N] [--quick] [--only REGEX]

BUILD_DIR holds benchmarks/workloads_bench, benchmarks/ops_bench and
benchmarks/peers/torch_workloads (configure with -DXGRAD_BUILD_PEERS=ON). The peer first checks
that both engines reach the same final losses; then every workload runs at 1 and 2 threads,
xgrad and libtorch alternately, each run in a fresh process, `--rounds` times; the tables show the
fastest run of each (the one least disturbed by other work on the machine). --only keeps the
workloads whose names match REGEX (e.g. '^(cnn_epoch|transformer_step)$') and leaves out the
single-operation tables.

Standard library only, so that it runs with the system's /usr/bin/python3.
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

WORKLOADS = [
    # name, label, target ratio (libtorch / xgrad), extra target note
    ("smallest_network", "smallest network (6x3, 25,000 epochs, float64)", 10.0),
    ("graph_overhead", "graph overhead (10 ops on 4x4, fwd+bwd)", 5.0),
    ("image_classifier", "image classifier (209x4096-8-1, 2,500 steps)", 1.2),
    ("fashion_mnist_epoch", "Fashion-MNIST epoch (784-256-128-10, batch 64)", 1.2),
    ("wide_mlp_step", "wide MLP step (512 x 1024-1024-1024-10)", 1.0),
    ("pinn_step", "PINN step (1-32-32-1 tanh, 64 points, u'' by create_graph, float64)", 3.0),
    ("cnn_epoch", "CNN, 100 steps of batch 64 on 6,400 Fashion-MNIST images "
     "(conv-BN-ReLU-pool x2, 1568-128-10)", 1.0),
    ("transformer_step", "char transformer step (2 pre-norm blocks, width 64, 4 heads, "
     "context 16, batch 32, AdamW)", 1.5),
]
# Workloads whose peak resident memory (whole process, 1 thread) is reported, with titles.
MEMORY = [
    ("fashion_mnist_epoch", "one Fashion-MNIST epoch"),
    ("cnn_epoch", "CNN, 100 steps (6,400 images loaded)"),
    ("transformer_step", "char transformer, 20 steps"),
]
THREADS = [1, 2]
UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def run_json(cmd, threads=None):
    env = dict(os.environ)
    if threads is not None:
        # Both engines call OpenBLAS (libtorch through its own copy of libblas.so.3, which
        # only reads the environment); OMP_NUM_THREADS caps libtorch's OpenMP pool.
        env["OPENBLAS_NUM_THREADS"] = str(threads)
        env["OMP_NUM_THREADS"] = str(threads)
    out = subprocess.run(cmd + ["--benchmark_format=json"], env=env, check=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    results = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        b["seconds"] = b["real_time"] * UNIT_SECONDS[b["time_unit"]]
        # "name/threads:1/iterations:1/real_time" -> "name/threads:1"
        results[re.sub(r"(/iterations:\d+|/real_time)", "", b["name"])] = b
    return results


def best(runs):
    return min(runs, key=lambda b: b["seconds"]) if runs else None


def fmt_time(seconds):
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.2f} us"


def machine():
    model = platform.processor() or "unknown"
    try:
        for line in subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical CPUs"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("build")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="one round, fewer single-op sizes")
    p.add_argument("--only", metavar="REGEX",
                   help="only the workloads whose names match (no single-op tables)")
    args = p.parse_args()
    workloads = [w for w in WORKLOADS if not args.only or re.search(args.only, w[0])]
    if not workloads:
        sys.exit(f"compare.py: no workload matches {args.only!r}")
    names = {w[0] for w in workloads}
    rounds = 1 if args.quick else args.rounds
    bench = os.path.join(args.build, "benchmarks")
    ours = [os.path.join(bench, "workloads_bench")]
    peer = [os.path.join(bench, "peers", "torch_workloads")]
    ops = [os.path.join(bench, "ops_bench")]
    for exe in (ours[0], peer[0], ops[0]):
        if not os.access(exe, os.X_OK):
            sys.exit(f"compare.py: {exe} is missing; build with -DXGRAD_BUILD_PEERS=ON")

    print(f"# xgrad vs libtorch\n")
    print(f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}")
    print(f"- machine: {machine()}")
    print(f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"- fastest of {rounds} run(s) per cell, xgrad and libtorch alternating")
    if args.only:
        print(f"- workloads matching `{args.only}` only")
    print()

    print("## Same work on both sides\n")
    print("```")
    sys.stdout.flush()
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    check = subprocess.run(peer + ["--check"], env=env, stdout=subprocess.PIPE, text=True)
    print(check.stdout.rstrip())
    print("```\n")
    if check.returncode != 0:
        sys.exit("compare.py: the final losses differ; the comparison would be meaningless")

    # SGEMM peak and the GEMM-only floor of each MLP workload.
    floors = {}
    for t in THREADS:
        floor_names = "|".join(re.escape(n) for n in sorted(names))
        floors.update(run_json(
            ours + [f"--benchmark_filter=^(sgemm_peak|matmul_peak|gemm_floor/({floor_names}))"
                    f"/threads:{t}/"], t))

    times = {}  # (side, name, threads) -> [runs]
    for _ in range(rounds):
        for name, _, _ in workloads:
            for t in THREADS:
                key = f"{name}/threads:{t}"
                for side, exe in (("xgrad", ours), ("torch", peer)):
                    r = run_json(exe + [f"--benchmark_filter=^{key}/"], t)
                    times.setdefault((side, name, t), []).append(r[key])

    print("## Workloads\n")
    print("Time per workload run (per step for the wide MLP, the PINN and the transformer); ratio = libtorch / xgrad "
          "(higher is better for xgrad); GFLOP/s counts the matrix products only; peak = "
          "OpenBLAS's cblas_sgemm 1024^3 at the same thread count; GEMM floor = the same products "
          "through cblas_sgemm alone (the BLAS both sides call). Above 100% xgrad's products beat "
          "OpenBLAS's (its own kernels for skinny float products on CPUs with AVX-512).\n")
    print("| workload | threads | xgrad | libtorch | ratio | target | GFLOP/s | % of SGEMM peak "
          "| GEMM floor | floor / xgrad | loss diff |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, label, target in workloads:
        for t in THREADS:
            x = best(times[("xgrad", name, t)])
            y = best(times[("torch", name, t)])
            ratio = y["seconds"] / x["seconds"]
            flop = x.get("flop", 0)
            peak = floors[f"sgemm_peak/threads:{t}"]
            peak_gflops = peak["flop"] / peak["seconds"] / 1e9
            gf = pct = floor_s = floor_frac = "-"
            if flop:
                g = flop / x["seconds"] / 1e9
                gf = f"{g:.1f}"
                pct = f"{100 * g / peak_gflops:.0f}%"
                fl = floors.get(f"gemm_floor/{name}/threads:{t}")
                if fl:
                    floor_s = fmt_time(fl["seconds"])
                    floor_frac = f"{100 * fl['seconds'] / x['seconds']:.0f}%"
            diff = abs(x["loss"] - y["loss"]) / max(abs(x["loss"]), 1e-30)
            mark = "" if ratio >= target else " (below)"
            print(f"| {label} | {t} | {fmt_time(x['seconds'])} | {fmt_time(y['seconds'])} | "
                  f"{ratio:.2f}x{mark} | >= {target:g}x | {gf} | {pct} | {floor_s} | {floor_frac} "
                  f"| {diff:.1e} |")
    for t in THREADS:
        peak = floors[f"sgemm_peak/threads:{t}"]
        ours_peak = floors[f"matmul_peak/threads:{t}"]
        print(f"\nSGEMM 1024^3 at {t} thread(s): OpenBLAS "
              f"{peak['flop'] / peak['seconds'] / 1e9:.1f} GFLOP/s, xgrad's gemm "
              f"{ours_peak['flop'] / ours_peak['seconds'] / 1e9:.1f} GFLOP/s", end="")
    print("\n")

    memory = [(n, title) for n, title in MEMORY if n in names]
    if memory:
        print("## Peak resident memory (1 thread, whole process, largest of the runs)\n")
        print("| workload | xgrad | libtorch | ratio |")
        print("| --- | --- | --- | --- |")
        for name, title in memory:
            rss_x = max(r["rss_mib"] for r in times[("xgrad", name, 1)])
            rss_y = max(r["rss_mib"] for r in times[("torch", name, 1)])
            print(f"| {title} | {rss_x:.0f} MiB | {rss_y:.0f} MiB | {rss_y / rss_x:.2f}x |")
        print()

    if not args.only:
        single_ops(ops, args.quick)


def single_ops(ops, quick):
    runs = [run_json(ops, None)]
    if not quick:
        runs.append(run_json(ops, None))

    def t(name):
        return best([r[name] for r in runs if name in r])["seconds"]

    print("## Single operations against their floors\n")
    print("matmul: xgrad / cblas_sgemm speed (>= 0.95 wanted); backward = fwd+bwd - fwd, as a "
          "multiple of the forward (<= 2.1 wanted).\n")
    print("| n | threads | sgemm | matmul fwd | speed vs sgemm | fwd+bwd | backward / forward "
          "| floor fwd+bwd | fwd+bwd speed vs floor |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    sizes = [(n, th) for n in (8, 16, 32, 48) for th in (1, 2)]
    sizes += [(n, 1) for n in (64, 128, 256, 512, 1024)]
    for n, th in sizes:
        suffix = f"/n:{n}/threads:{th}"
        s, f, fb = t("sgemm_floor" + suffix), t("matmul_fwd" + suffix), t("matmul_fwdbwd" + suffix)
        sfb = t("sgemm_fwdbwd_floor" + suffix)
        print(f"| {n} | {th} | {fmt_time(s)} | {fmt_time(f)} | {s / f:.2f} | {fmt_time(fb)} | "
              f"{(fb - f) / f:.2f} | {fmt_time(sfb)} | {sfb / fb:.2f} |")
    print("\nSmall products at 2 threads vs 1 thread (matmul fwd+bwd; >= 1.0 means threading "
          "does not slow them):", end="")
    for n in (8, 16, 32, 48):
        one = t(f"matmul_fwdbwd/n:{n}/threads:1")
        two = t(f"matmul_fwdbwd/n:{n}/threads:2")
        print(f" n={n}: {one / two:.2f};", end="")
    print("\n")

    print("Elementwise ops and sum on 2^20 floats: xgrad speed as a fraction of a plain xsimd "
          "loop doing the same memory work (>= 0.8 wanted).\n")
    print("| op | fwd | floor | speed | fwd+bwd | floor | speed |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for op in ("add", "mul", "exp", "sigmoid", "relu", "sum"):
        f, ff = t(f"{op}_1m/backward:0"), t(f"{op}_1m_floor/backward:0")
        b, bf = t(f"{op}_1m/backward:1"), t(f"{op}_1m_floor/backward:1")
        print(f"| {op} | {fmt_time(f)} | {fmt_time(ff)} | {ff / f:.2f} | {fmt_time(b)} | "
              f"{fmt_time(bf)} | {bf / b:.2f} |")
    print()


if __name__ == "__main__":
    main()
