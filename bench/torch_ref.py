#!/usr/bin/python3
"""The minirlhf model in PyTorch, for bench/compare.py: the reference that
issue 9 measures us against.

Run it with Debian's interpreter and python3-torch (1.13):
    /usr/bin/python3 bench/torch_ref.py --mode train --config tiny --threads 2
    /usr/bin/python3 bench/torch_ref.py --mode generate --config small --threads 2
    /usr/bin/python3 bench/torch_ref.py --info        # versions and BLAS, as JSON

The model is ours (model/gpt.h, model/layers.c) written the way nanoGPT
writes GPT-2: learned position embeddings, pre-LayerNorm blocks (eps 1e-5,
with bias), causal self-attention scaled by 1/sqrt(head size) in the
explicit softmax form (nanoGPT's fallback path: torch 1.13 has neither
scaled_dot_product_attention nor torch.compile), a 4x MLP with the tanh GELU,
a final LayerNorm and an LM head tied to the token embedding, plus the
scalar head (C -> 1) every minirlhf model carries and computes at every
position, so the parameter count is exactly ours.

train: forward, mean cross-entropy on random targets, backward, gradient-norm
clipping at 1.0 and AdamW (foreach=True; betas 0.9/0.95, eps 1e-8, weight
decay 0.1 on the four matrix weights of each block only, as model/adamw.c;
lr 1e-4, as bench_model).

generate: B random prompts of P tokens continued by exactly N new tokens each
under torch.inference_mode(), with a preallocated KV cache: one prefill
forward over the prompts (LM head at the last position only, as nanoGPT's
inference path), then one single-token forward per new token. Tokens are
drawn by torch.multinomial from softmax(logits / temperature), or argmax at
temperature 0; no stop token, as bench_model uses none.

Prints a human-readable summary and one line
    RESULT impl=torch mode=... config=... key=value ...
in the format bench/bench_model.c prints.
"""
import argparse
import ctypes
import json
import math
import os
import platform
import sys
import time

import torch
import torch.nn as nn
from torch.nn import functional as F

CONFIGS = {  # the shapes of model/config.c and the vocabularies of BENCHMARKS.md
    "smoke": dict(n_embd=32, n_layer=2, n_head=2, block_size=64, vocab=2048),
    "tiny": dict(n_embd=128, n_layer=4, n_head=4, block_size=128, vocab=2048),
    "small": dict(n_embd=384, n_layer=6, n_head=6, block_size=256, vocab=4096),
}


class CausalSelfAttention(nn.Module):
    def __init__(self, C, n_head, block_size):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size))
                             .view(1, 1, block_size, block_size))
        self.cache_k = self.cache_v = None

    def forward(self, x, pos=None):
        """pos None: training, no cache. pos int: the tokens of x sit at
        positions pos .. pos+T-1; their keys and values go into the cache and
        attention reads positions 0 .. pos+T-1 from it."""
        B, T, C = x.size()
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        start = 0
        if pos is not None:
            self.cache_k[:B, :, pos:pos + T] = k
            self.cache_v[:B, :, pos:pos + T] = v
            k = self.cache_k[:B, :, :pos + T]
            v = self.cache_v[:B, :, :pos + T]
            start = pos
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        if T > 1:  # one new token may attend to everything cached
            S = k.size(2)
            att = att.masked_fill(self.bias[:, :, start:start + T, :S] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = att @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.c_fc = nn.Linear(C, 4 * C)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, C, n_head, block_size):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.attn = CausalSelfAttention(C, n_head, block_size)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.mlp = MLP(C)

    def forward(self, x, pos=None):
        x = x + self.attn(self.ln_1(x), pos)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, vocab, n_embd, n_layer, n_head, block_size):
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList([Block(n_embd, n_head, block_size) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd, eps=1e-5)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.head = nn.Linear(n_embd, 1)  # minirlhf's scalar (reward / value) head
        # GPT-2 initialisation, as gpt_init_random.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))
            elif p.dim() == 2 and not name.startswith("head"):
                nn.init.normal_(p, 0.0, 0.02)
            elif name.startswith("head") or name.endswith(".bias"):
                nn.init.zeros_(p)

    def forward(self, idx, pos=None, last_only=False):
        B, T = idx.size()
        start = 0 if pos is None else pos
        positions = torch.arange(start, start + T, dtype=torch.long)
        x = self.wte(idx) + self.wpe(positions)
        for block in self.h:
            x = block(x, pos)
        x = self.ln_f(x)
        if last_only:
            x = x[:, [-1], :]
        return self.lm_head(x), self.head(x).squeeze(-1)

    def allocate_kv_cache(self, B):
        for block in self.h:
            a = block.attn
            hs = a.c_attn.in_features // a.n_head
            a.cache_k = torch.zeros(B, a.n_head, self.block_size, hs)
            a.cache_v = torch.zeros(B, a.n_head, self.block_size, hs)


def make_optimizer(model, lr):
    """AdamW as model/adamw.c: decay only the four matrix weights of each block."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():  # the tied weight appears once
        matrix = name.startswith("h.") and name.endswith(".weight") and p.dim() == 2
        (decay if matrix else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, foreach=True)


def train_flops_per_token(cfg, V, T):
    """As bench_model.c: 6 x (matmul params incl. LM head) + 12 L T C."""
    C, L = cfg["n_embd"], cfg["n_layer"]
    return 6.0 * (12.0 * L * C * C + V * C) + 12.0 * L * T * C


def generate_flops(cfg, V, B, P, N):
    """As bench_model.c: B x [(P+N-1) x 24 L C^2 + N x 2 V C + 4 L C x sum of contexts]."""
    C, L = cfg["n_embd"], cfg["n_layer"]
    positions = P + N - 1
    context_sum = positions * (positions + 1) / 2
    return B * (positions * 24.0 * L * C * C + N * 2.0 * V * C + 4.0 * L * C * context_sum)


def bench_train(model, V, B, T, steps, warmup):
    opt = make_optimizer(model, 1e-4)
    g = torch.Generator().manual_seed(2)
    idx = torch.randint(V, (B, T), generator=g)
    targets = torch.randint(V, (B, T), generator=g)
    times = []
    for s in range(warmup + steps):
        t0 = time.perf_counter()
        logits, _ = model(idx)
        loss = F.cross_entropy(logits.view(-1, V), targets.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if s >= warmup:
            times.append(time.perf_counter() - t0)
    return times


@torch.inference_mode()
def generate(model, prompts, N, temperature):
    B, P = prompts.size()
    logits, _ = model(prompts, pos=0, last_only=True)  # prefill
    out = torch.empty(B, N, dtype=torch.long)
    for i in range(N):
        last = logits[:, -1, :]
        if temperature > 0:
            nxt = torch.multinomial(F.softmax(last / temperature, dim=-1), num_samples=1)
        else:
            nxt = torch.argmax(last, dim=-1, keepdim=True)
        out[:, i:i + 1] = nxt
        if i + 1 < N:  # the last token is never fed back
            logits, _ = model(nxt, pos=P + i)
    return out


def bench_generate(model, V, B, P, N, temperature, runs, warmup):
    model.allocate_kv_cache(B)  # once, outside the timing (as bench_model's KVCache)
    g = torch.Generator().manual_seed(3)
    times = []
    for r in range(warmup + runs):
        prompts = torch.randint(V, (B, P), generator=g)
        t0 = time.perf_counter()
        out = generate(model, prompts, N, temperature)
        dt = time.perf_counter() - t0
        assert out.shape == (B, N)
        if r >= warmup:
            times.append(dt)
    return times


def upper_median(times):
    """bench_model's median: the upper middle one of an even count."""
    return sorted(times)[len(times) // 2]


def blas_info():
    """The BLAS this torch process actually loaded, and OpenBLAS's kernel set
    if that is OpenBLAS (Debian's torch calls the system libblas.so.3)."""
    torch.mm(torch.ones(64, 64), torch.ones(64, 64))  # make sure BLAS is loaded
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            base = os.path.basename(path)
            if any(s in base for s in ("blas", "lapack", "mkl", "dnnl", "gomp", "omp")):
                libs.add(os.path.realpath(path))
    core = None
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        core = lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        pass
    blas = [line.strip() for line in torch.__config__.show().splitlines() if "BLAS_INFO" in line]
    build_blas = None
    if blas:
        for item in blas[0].split(","):
            if "BLAS_INFO" in item:
                build_blas = item.split("=")[-1].strip()
    return {"libraries": sorted(libs), "openblas_core": core, "build_blas_info": build_blas}


def info():
    return {
        "torch_version": torch.__version__,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "machine": platform.machine(),
        "torch_num_threads": torch.get_num_threads(),
        "blas": blas_info(),
        "config_show": torch.__config__.show(),
        "parallel_info": torch.__config__.parallel_info(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--mode", choices=("train", "generate"), default="train")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    ap.add_argument("--vocab", type=int, default=0, help="0: the config's (tiny 2048, small 4096)")
    ap.add_argument("--batch", type=int, default=0, help="0: train tiny 8, small 4; generate 16")
    ap.add_argument("--seq", type=int, default=0, help="train: tokens per sequence (0: the context)")
    ap.add_argument("--prompt", type=int, default=32, help="generate: prompt tokens")
    ap.add_argument("--new", type=int, default=64, help="generate: new tokens (all of them)")
    ap.add_argument("--temperature", type=float, default=1.0, help="generate: 0 is greedy")
    ap.add_argument("--steps", type=int, default=20, help="timed steps or generate calls")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps or calls first")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: OMP_NUM_THREADS, else torch's default)")
    ap.add_argument("--info", action="store_true", help="print versions and BLAS as JSON and exit")
    a = ap.parse_args()

    threads = a.threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads:
        torch.set_num_threads(threads)
    if a.info:
        print(json.dumps(info(), indent=1))
        return
    cfg = CONFIGS[a.config]
    V = a.vocab or cfg["vocab"]
    T = a.seq or cfg["block_size"]
    B = a.batch or (16 if a.mode == "generate" else {"small": 4}.get(a.config, 8))
    if T > cfg["block_size"] or (a.mode == "generate" and a.prompt + a.new > cfg["block_size"]):
        sys.exit("torch_ref: the sequence exceeds the context %d" % cfg["block_size"])
    torch.manual_seed(1)
    model = GPT(V, cfg["n_embd"], cfg["n_layer"], cfg["n_head"], cfg["block_size"])
    n_params = sum(p.numel() for p in model.parameters())
    threads = torch.get_num_threads()
    blas = blas_info()
    core = blas["openblas_core"] or "none"
    print("config %s: d=%d L=%d H=%d T=%d vocab=%d params=%d; torch %s, %d threads, BLAS %s (OpenBLAS core %s)"
          % (a.config, cfg["n_embd"], cfg["n_layer"], cfg["n_head"], cfg["block_size"], V, n_params,
             torch.__version__, threads, ", ".join(blas["libraries"]) or "?", core))
    sys.stdout.flush()
    if a.mode == "train":
        model.train()
        times = bench_train(model, V, B, T, a.steps, a.warmup)
        tokens, flops = B * T, train_flops_per_token(cfg, V, T) * B * T
        med = upper_median(times)
        print("train step (batch %dx%d): median %.2f ms (min %.2f, max %.2f over %d steps), %.0f tokens/s, %.1f GFLOP/s"
              % (B, T, med * 1e3, min(times) * 1e3, max(times) * 1e3, a.steps, tokens / med, flops / med * 1e-9))
        shape = "batch=%d seq=%d" % (B, T)
    else:
        model.eval()
        times = bench_generate(model, V, B, a.prompt, a.new, a.temperature, a.steps, a.warmup)
        tokens, flops = B * a.new, generate_flops(cfg, V, B, a.prompt, a.new)
        med = upper_median(times)
        print("generate (batch %d, prompt %d, %d new, temperature %g): median %.2f ms per call (min %.2f, max %.2f over %d calls), "
              "%.0f generated tokens/s, %.1f GFLOP/s"
              % (B, a.prompt, a.new, a.temperature, med * 1e3, min(times) * 1e3, max(times) * 1e3, a.steps,
                 tokens / med, flops / med * 1e-9))
        shape = "batch=%d prompt=%d new=%d" % (B, a.prompt, a.new)
    extra = " temperature=%g" % a.temperature if a.mode == "generate" else ""
    print("RESULT impl=torch mode=%s config=%s threads=%d %s vocab=%d params=%d%s runs=%d median_ms=%.3f "
          "min_ms=%.3f max_ms=%.3f tokens_per_s=%.1f gflops=%.2f blas_core=%s torch=%s"
          % (a.mode, a.config, threads, shape, V, n_params, extra, a.steps, med * 1e3, min(times) * 1e3,
             max(times) * 1e3, tokens / med, flops / med * 1e-9, core, torch.__version__))


if __name__ == "__main__":
    main()
