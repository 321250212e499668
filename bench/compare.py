#!/usr/bin/python3
"""Ours against PyTorch, in one invocation: bench_model (C) and
bench/torch_ref.py (PyTorch 1.13) alternate on the same shapes, for a
training step and for KV-cache generation, on the tiny and small configs.

    /usr/bin/python3 bench/compare.py [--rounds 5] [--threads 2]
    /usr/bin/python3 bench/update_benchmarks.py     # the table in BENCHMARKS.md

Build first (cmake --build build). Run with Debian's /usr/bin/python3, which
has python3-torch; the pyenv python3 on PATH has no torch.

Each round runs every (mode, config) case once per side; within a case the
side that goes first alternates from round to round (ours first in round 1),
so a drift in machine load does not favour one side. One run of one side is
one process: warm-up steps, then timed steps, and it reports its median. The
summary is the median over rounds of those medians and the ratio ours/torch
of median tokens/s (also the median of the per-round ratios, which pairs
runs made close together in time).

Both sides get the same OMP_NUM_THREADS (torch also torch.set_num_threads),
the same OMP_WAIT_POLICY (left as the environment has it unless
--wait-policy is given) and the same OPENBLAS_CORETYPE; Debian's torch calls
the same OpenBLAS (libblas.so.3 -> openblas-openmp) for its matrix products.

Writes bench/results/compare-YYYYMMDD-HHMMSS.json: the machine, load average
at the start and end, versions, BLAS kernel sets, every run's RESULT line,
and the summary.
"""
import argparse
import datetime
import json
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"

# The compared shapes (issue 9). vocab and batch are given explicitly to both
# sides so that neither relies on its own defaults.
CASES = {
    "tiny": dict(vocab=2048, train_batch=8),
    "small": dict(vocab=4096, train_batch=4),
}
GEN = dict(batch=16, prompt=32, new=64)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return "unknown"


def git_commit():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parse_fields(line):
    fields = dict(kv.split("=", 1) for kv in line.split()[1:])
    for k, v in fields.items():
        try:
            fields[k] = float(v) if re.search(r"[.eE]", v) else int(v)
        except ValueError:
            pass
    return fields


def parse_result(stdout):
    """The RESULT line's fields; with bench_model_sgemm, also its SGEMM line's
    as sgemm_ms, sgemm_calls and sgemm_gflop."""
    res = None
    for line in stdout.splitlines():
        if line.startswith("RESULT ") and res is None:
            res = parse_fields(line)
    for line in stdout.splitlines():
        if line.startswith("SGEMM ") and res is not None:
            f = parse_fields(line)
            res.update(sgemm_ms=f["sgemm_ms"], sgemm_calls=f["calls"], sgemm_gflop=f["gflop"])
    return res


def run(cmd, env):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit("compare: %s failed (exit %d):\n%s%s" % (shlex.join(cmd), p.returncode, p.stdout, p.stderr))
    res = parse_result(p.stdout)
    if res is None:
        sys.exit("compare: no RESULT line from %s:\n%s" % (shlex.join(cmd), p.stdout))
    return res


def case_args(mode, config, a):
    c = CASES[config]
    args = ["--mode", mode, "--config", config, "--vocab", str(c["vocab"])]
    if mode == "train":
        args += ["--batch", str(c["train_batch"]), "--steps", str(a.train_steps), "--warmup", str(a.train_warmup)]
    else:
        args += ["--batch", str(GEN["batch"]), "--prompt", str(GEN["prompt"]), "--new", str(GEN["new"]),
                 "--temperature", "%g" % a.temperature, "--steps", str(a.gen_runs), "--warmup", str(a.gen_warmup)]
    return args


def gemm_ceiling(bin_dir, env):
    """The 2048^2 row of gemm_peak: the sgemm ceiling that MFU divides by."""
    p = subprocess.run([os.path.join(bin_dir, "gemm_peak"), "--reps", "10"], capture_output=True, text=True,
                       env=env)
    if p.returncode != 0:
        return None, p.stdout + p.stderr
    for line in p.stdout.splitlines():
        f = line.split()
        if len(f) == 5 and f[0] == "square" and f[1] == "2048":
            return float(f[4]), p.stdout
    return None, p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    ap.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS and torch.set_num_threads")
    ap.add_argument("--wait-policy", choices=("passive", "active"), default=None,
                    help="set OMP_WAIT_POLICY for both sides (default: leave the environment's)")
    ap.add_argument("--configs", default="tiny,small")
    ap.add_argument("--modes", default="train,generate")
    ap.add_argument("--train-steps", type=int, default=10, help="timed training steps per run")
    ap.add_argument("--train-warmup", type=int, default=3)
    ap.add_argument("--gen-runs", type=int, default=5, help="timed generation calls per run")
    ap.add_argument("--gen-warmup", type=int, default=1)
    ap.add_argument("--temperature", type=float, default=1.0,
                    help="generation: multinomial sampling at this temperature on both sides (0: argmax)")
    ap.add_argument("--no-gemm-peak", action="store_true", help="skip the sgemm ceiling (no MFU)")
    ap.add_argument("--sgemm-clock", action="store_true",
                    help="run ours as bench_model_sgemm, which also reports the time inside cblas_sgemm "
                         "(two clock reads per call more)")
    ap.add_argument("--bin", default=os.environ.get("MINIRLHF_BIN", os.path.join(ROOT, "build", "bin")))
    ap.add_argument("--out", default=None, help="results file (default bench/results/compare-DATE.json)")
    a = ap.parse_args()
    configs = [c for c in a.configs.split(",") if c]
    modes = [m for m in a.modes.split(",") if m]
    for c in configs:
        if c not in CASES:
            sys.exit("compare: unknown config %s" % c)
    for m in modes:
        if m not in ("train", "generate"):
            sys.exit("compare: unknown mode %s" % m)
    ours_bin = os.path.join(a.bin, "bench_model_sgemm" if a.sgemm_clock else "bench_model")
    if not os.access(ours_bin, os.X_OK):
        sys.exit("compare: %s not found; build first: cmake -S . -B build && cmake --build build" % ours_bin)
    torch_ref = os.path.join(ROOT, "bench", "torch_ref.py")

    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(a.threads)
    if a.wait_policy:
        env["OMP_WAIT_POLICY"] = a.wait_policy.upper()
    start = datetime.datetime.now().astimezone()
    meta = {
        "date": start.isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
        "commit": git_commit(),
        "threads": a.threads,
        "omp_wait_policy": env.get("OMP_WAIT_POLICY", "unset"),
        "openblas_coretype": env.get("OPENBLAS_CORETYPE", "unset"),
        "rounds": a.rounds,
        "train_steps": a.train_steps, "train_warmup": a.train_warmup,
        "gen_runs": a.gen_runs, "gen_warmup": a.gen_warmup,
        "temperature": a.temperature,
        "sgemm_clock": a.sgemm_clock,
        "command": "/usr/bin/python3 bench/compare.py " + shlex.join(sys.argv[1:]),
        "loadavg_start": loadavg(),
    }
    print("compare: %s, %s, %d CPUs; %d threads, OMP_WAIT_POLICY=%s, OPENBLAS_CORETYPE=%s; load average %s"
          % (meta["date"], meta["cpu"], meta["nproc"], a.threads, meta["omp_wait_policy"],
             meta["openblas_coretype"], meta["loadavg_start"]), flush=True)
    p = subprocess.run([PY, torch_ref, "--info", "--threads", str(a.threads)], capture_output=True, text=True,
                       env=env)
    if p.returncode != 0:
        sys.exit("compare: torch_ref.py --info failed (is python3-torch installed? apt-get install python3-torch):\n"
                 + p.stderr)
    meta["torch"] = json.loads(p.stdout)
    print("compare: torch %s, BLAS %s, OpenBLAS core %s" % (
        meta["torch"]["torch_version"], meta["torch"]["blas"]["build_blas_info"],
        meta["torch"]["blas"]["openblas_core"]), flush=True)
    if not a.no_gemm_peak:
        meta["sgemm_ceiling_gflops"], meta["gemm_peak_output"] = gemm_ceiling(a.bin, env)
        print("compare: sgemm ceiling at the start (2048^2, gemm_peak) %s GFLOP/s" % meta["sgemm_ceiling_gflops"],
              flush=True)

    runs = []
    for r in range(a.rounds):
        for mode in modes:
            for config in configs:
                args = case_args(mode, config, a)
                sides = [("ours", [ours_bin] + args), ("torch", [PY, torch_ref, "--threads", str(a.threads)] + args)]
                if r % 2:
                    sides.reverse()
                for order, (impl, cmd) in enumerate(sides):
                    res = run(cmd, env)
                    runs.append({"round": r + 1, "order": order, "impl": impl, "mode": mode, "config": config,
                                 "command": shlex.join(cmd), "result": res})
                    print("round %d/%d %-8s %-5s %-5s median %9.2f ms  %9.0f tokens/s  %7.2f GFLOP/s"
                          % (r + 1, a.rounds, mode, config, impl, res["median_ms"], res["tokens_per_s"],
                             res["gflops"]), flush=True)
    meta["loadavg_end"] = loadavg()
    if not a.no_gemm_peak:
        # Measured again at the end: on a shared machine one measurement can
        # catch a burst of other work; MFU divides by the higher of the two.
        meta["sgemm_ceiling_end_gflops"], meta["gemm_peak_output_end"] = gemm_ceiling(a.bin, env)
        meta["sgemm_ceiling_start_gflops"] = meta["sgemm_ceiling_gflops"]
        both = [x for x in (meta["sgemm_ceiling_start_gflops"], meta["sgemm_ceiling_end_gflops"]) if x]
        meta["sgemm_ceiling_gflops"] = max(both) if both else None
        print("compare: sgemm ceiling at the end %s GFLOP/s; MFU uses %s"
              % (meta["sgemm_ceiling_end_gflops"], meta["sgemm_ceiling_gflops"]), flush=True)
    meta["openblas_core_ours"] = next((x["result"].get("blas_core") for x in runs if x["impl"] == "ours"), None)

    summary = []
    print("\n%-8s %-5s %12s %12s %12s %12s %8s %16s" % ("mode", "config", "ours ms", "ours tok/s", "torch ms",
                                                        "torch tok/s", "ratio", "paired ratios"))
    for mode in modes:
        for config in configs:
            mine = [x for x in runs if x["mode"] == mode and x["config"] == config]
            ours = {x["round"]: x["result"] for x in mine if x["impl"] == "ours"}
            theirs = {x["round"]: x["result"] for x in mine if x["impl"] == "torch"}
            med = lambda d, k: statistics.median(v[k] for v in d.values())
            paired = [ours[r]["tokens_per_s"] / theirs[r]["tokens_per_s"] for r in sorted(ours)]
            o0, t0 = next(iter(ours.values())), next(iter(theirs.values()))
            s = {
                "mode": mode, "config": config,
                "shape": {k: o0[k] for k in ("batch", "seq", "prompt", "new", "vocab", "temperature") if k in o0},
                "params_ours": o0["params"], "params_torch": t0["params"],
                "ours_median_ms": med(ours, "median_ms"), "ours_tokens_per_s": med(ours, "tokens_per_s"),
                "ours_gflops": med(ours, "gflops"),
                "torch_median_ms": med(theirs, "median_ms"), "torch_tokens_per_s": med(theirs, "tokens_per_s"),
                "torch_gflops": med(theirs, "gflops"),
                "paired_ratios": paired,
            }
            if all("sgemm_ms" in v for v in ours.values()):
                s["ours_sgemm_ms"] = med(ours, "sgemm_ms")
                s["ours_sgemm_gflop"] = o0["sgemm_gflop"]
            s["ratio"] = s["ours_tokens_per_s"] / s["torch_tokens_per_s"]
            s["paired_ratio_median"] = statistics.median(paired)
            if o0["params"] != t0["params"]:
                print("compare: WARNING: %s %s parameter counts differ: ours %d, torch %d"
                      % (mode, config, o0["params"], t0["params"]))
            summary.append(s)
            print("%-8s %-5s %12.2f %12.0f %12.2f %12.0f %7.2fx %16s" % (
                mode, config, s["ours_median_ms"], s["ours_tokens_per_s"], s["torch_median_ms"],
                s["torch_tokens_per_s"], s["ratio"], " ".join("%.2f" % x for x in paired)))
    print("load average: start %s, end %s" % (meta["loadavg_start"], meta["loadavg_end"]))

    out = os.path.abspath(a.out or os.path.join(ROOT, "bench", "results",
                                                "compare-%s.json" % start.strftime("%Y%m%d-%H%M%S")))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"meta": meta, "summary": summary, "runs": runs}, f, indent=1)
        f.write("\n")
    shown = os.path.relpath(out, ROOT) if out.startswith(ROOT + os.sep) else out
    print("compare: wrote %s\n  table: /usr/bin/python3 bench/update_benchmarks.py %s" % (shown, shown))


if __name__ == "__main__":
    main()
