"""The sections of benchmarks/gpu_check.sh: each checks one GPU path and returns its figures.

Every section runs in its own process (benchmarks/gpu_check.py starts them with
a timeout), raises on a failed check, and returns a flat dict of figures. With
`smoke=True` each runs a tiny version on the CPU, so CI can hold the script to
the code it drives without a GPU.

Data: synthetic English-like text (a seeded word chain), tokenized as bytes, so
the check needs no hub, no tokenizer download and no files beyond the checkout.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import ROOT

CLI = "import sys; from nightshift.orchestrator.cli import main; sys.exit(main(sys.argv[1:]))"  # `nightshift`

WORDS = ("the of and to in a is that was he for it with as his on be at by had not are but from or have an they "
         "which one you were her all she there would their we him been has when who will more no if out so said "
         "what up its about into than them can only other new some could time these two may then do first any my "
         "now such like our over man me even most made after also did many before must through back years where "
         "much your way well down should because each just those people how too little state good very make world "
         "still own see men work long get here between both life being under never day same another know while "
         "last might us great old year off come since against go came right used take three sea ship night house"
         ).split()


@dataclass(frozen=True, slots=True)
class Ctx:
    """What every section gets: where to work, the prepared dataset, the device, and the mode."""

    work: Path  # this section's own scratch folder
    seed_store: Path  # a store holding only the prepared dataset (copied, never written)
    dataset_id: str
    smoke: bool  # tiny runs on the CPU (tests) instead of the GPU check

    @property
    def device(self) -> str:
        return "cpu" if self.smoke else "cuda"

    def fresh_store(self, name: str) -> Path:
        target = self.work / name
        shutil.copytree(self.seed_store / "datasets", target / "datasets")
        return target


# ------------------------------------------------------------------------------------ data
def write_corpus(folder: Path, train_bytes: int, valid_bytes: int, seed: int = 0) -> Path:
    """train.jsonl / validation.jsonl of ~20 KB documents: a word chain with sentences and paragraphs."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    follow = {w: rng.sample(WORDS, 12) for w in WORDS}  # each word has a few likely successors: learnable
    for split, budget in (("train", train_bytes), ("validation", valid_bytes)):
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            written = 0
            while written < budget:
                words, word = [], rng.choice(WORDS)
                while sum(len(w) + 1 for w in words) < 20_000:
                    words.append(word.capitalize() if not words or words[-1].endswith(".") else word)
                    if rng.random() < 0.08:
                        words[-1] += "." if rng.random() < 0.9 else ".\n\n"
                    word = rng.choice(follow[word]) if rng.random() < 0.85 else rng.choice(WORDS)
                text = " ".join(words)
                fh.write(json.dumps({"text": text}) + "\n")
                written += len(text)
    return folder


def prepare_seed_store(work: Path, smoke: bool) -> tuple[Path, str]:
    from nightshift.pipelines.prepare import PrepareConfig, prepare
    from nightshift.pipelines.store import Store

    corpus = write_corpus(work / "corpus", 200_000 if smoke else 3_000_000, 12_000 if smoke else 100_000)
    store = work / "seed-store"
    config = PrepareConfig(source=f"local:{corpus}", max_bytes=10**9, valid_bytes=10**9, tokenizer="bytes")
    manifest = prepare(config, Store.open(str(store)), actors=0, progress=False)
    return store, manifest.dataset_id


# ------------------------------------------------------------------------ helpers
def nightshift(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", CLI, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    if out.returncode not in (0, 130):
        raise RuntimeError(f"nightshift {' '.join(args[:3])} ... exited {out.returncode}: {out.stderr[-3000:]}")
    return out


def last_json(text: str) -> dict[str, Any]:
    start = text.rfind("\n{") + 1 if "\n{" in text else text.find("{")
    return json.loads(text[start:])


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def attempt(out: dict[str, Any], key: str, fn: Callable[[], Any]) -> Any:
    """Run one measurement; a failure becomes `<key>.error` (the section then fails, its other figures stay)."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - recorded; gpu_check.py fails the section on any *.error
        out[f"{key}.error"] = f"{type(exc).__name__}: {exc}"[-800:]
        return None


def timed_rate(step: Callable[[], Any], device: str, *, warmup: int, seconds: float, min_steps: int) -> float:
    """Steps per second of `step` after `warmup` calls (synchronized: GPU work is counted)."""
    for _ in range(warmup):
        step()
    sync(device)
    n, start = 0, time.perf_counter()
    while n < min_steps or time.perf_counter() - start < seconds:
        step()
        n += 1
    sync(device)
    return n / (time.perf_counter() - start)


def synthetic_vocab(size: int):
    """A vocabulary of `size` ids (the last one end-of-text) for throughput runs on random tokens."""
    from nightshift.models.protocol import Vocab

    return Vocab(name=f"synthetic-{size}", size=size, eot_id=size - 1,
                 token_bytes=tuple(bytes([i % 256]) for i in range(size - 1)) + (b"",))


# --------------------------------------------------------------- every family through `nightshift train`
EVAL_TOLERANCE_BPB = 1e-3  # device fp32 evaluation vs a CPU `nightshift eval` of the same checkpoint
RESUME_TOLERANCE_BPB = 0.01  # stop + resume vs uninterrupted, on a GPU (non-deterministic kernels)
FAMILY_RUNS = {  # family: (GPU flavor, smoke flavor, sleeps)
    "transformer": ("tiny", "debug", False),
    "attractor": ("a1", "debug", True),
    "holographic": ("suffix", "tiny", True),  # suffix keys: where a bf16 evaluation would be wrong (exact matches)
    "macro_unit": ("base", "small", True),
}


def train_family(ctx: Ctx, family: str) -> dict[str, Any]:
    """Train (sleep, eval, samples, checkpoints) on the device, stop with SIGTERM half way, resume to the
    end, then score the CUDA-written checkpoint in a fresh CPU process (`nightshift eval`)."""
    from nightshift.orchestrator.checkpointing.trail import CheckpointTrail
    from nightshift.orchestrator.runs.folders import find_run
    from nightshift.pipelines.store import Store

    gpu_flavor, smoke_flavor, sleeps = FAMILY_RUNS[family]
    steps, batch = (8, 8) if ctx.smoke else (40, 16)
    half = steps // 2
    store = ctx.fresh_store(f"store-{family}")
    sets = {"device": ctx.device, "batch_size": batch, "eval_every": half, "eval_max_bytes": 20_000,
            "checkpoint_every": max(1, half // 2), "sample_every": half, "sample_tokens": 16, "log_every": 2,
            "eval_batch_size": 16, "warmup_steps": 2}
    if sleeps:
        sets["sleep_every"] = batch * half // 2  # twice before the stop, twice after
    args = ["train", "--dataset", ctx.dataset_id, "--model", f"{family}:{smoke_flavor if ctx.smoke else gpu_flavor}",
            "--steps", str(steps), "--store", str(store), "--tracking-uri", "none", "--no-progress", "--json"]
    for key, value in sets.items():
        args += ["--set", f"train.{key}={value}"]
    t0 = time.perf_counter()
    # 1. until a checkpoint at `half`, where the run pauses; then SIGTERM: checkpoint and exit 143 (128 + SIGTERM)
    cmd = [sys.executable, "-c", CLI, *args]
    log = open(ctx.work / f"{family}-first.log", "w")  # noqa: SIM115 - closed below
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT), "NIGHTSHIFT_FAULTS": f"pause@{half}:300"})
    deadline = time.time() + 300
    latest = None
    while time.time() < deadline and first.poll() is None:
        found = list(store.glob("runs/*/*/*/checkpoints/latest.json"))
        if found and json.loads(found[0].read_text())["step"] >= half:
            latest = found[0]
            break
        time.sleep(0.5)
    if latest is None:
        first.kill()
        log.close()
        raise RuntimeError(f"no checkpoint at step {half} (exit {first.poll()}): "
                           f"{(ctx.work / f'{family}-first.log').read_text()[-3000:]}")
    first.send_signal(signal.SIGTERM)
    code = first.wait(timeout=180)
    log.close()
    if code != 143:
        first_log = (ctx.work / f"{family}-first.log").read_text()
        raise RuntimeError(f"SIGTERM: exit {code}, expected 143: {first_log[-3000:]}")
    stopped_at = json.loads(latest.read_text())["step"]
    # 2. the same command resumes from that checkpoint and finishes
    result = last_json(nightshift(*args).stdout)
    if result["step"] != steps or result["stop_reason"] != "finished":
        raise RuntimeError(f"resume did not finish: {result}")
    run = find_run(Store.open(str(store)), result["run_id"])
    trail = CheckpointTrail(Store.open(str(store)), run.config.run_path).trail()
    if not any(m.get("parent_step") == stopped_at and m["step"] > stopped_at for m in trail):
        raise RuntimeError(f"no checkpoint after step {stopped_at} continues from it: {trail}")
    if sleeps and not result["sleeps"]:
        raise RuntimeError(f"{family} never slept: {result}")
    if not result["device"].startswith(ctx.device):
        raise RuntimeError(f"ran on {result['device']}, expected {ctx.device}")
    # 3. a fresh CPU process reads the device's checkpoint and scores it: evaluation is float32 everywhere,
    # so the device's figure must be the CPU's (up to fp32 summation order)
    ev = last_json(nightshift("eval", result["run_id"], "--store", str(store), "--json").stdout)
    if abs(ev["val_bpb"] - result["val_bpb"]) > EVAL_TOLERANCE_BPB:
        raise RuntimeError(f"device val_bpb {result['val_bpb']:.6f} != CPU eval {ev['val_bpb']:.6f} of the same "
                           f"checkpoint (tolerance {EVAL_TOLERANCE_BPB})")
    # 4. resume vs one uninterrupted run: GPU kernels (embedding/SDPA backward atomics) are not bitwise
    # deterministic, so resume is documented "within tolerance": the gap is recorded, judged against RESUME_TOLERANCE
    resume_gap = None
    if not ctx.smoke:
        whole = ctx.fresh_store(f"store-{family}-whole")
        uninterrupted = last_json(nightshift(*[whole.as_posix() if a == str(store) else a for a in args]).stdout)
        resume_gap = abs(uninterrupted["val_bpb"] - result["val_bpb"])
        if resume_gap > RESUME_TOLERANCE_BPB:
            raise RuntimeError(f"resumed run ends at {result['val_bpb']:.5f} bpb, uninterrupted at "
                               f"{uninterrupted['val_bpb']:.5f} (tolerance {RESUME_TOLERANCE_BPB})")
    sample = last_json(nightshift("sample", result["run_id"], "--store", str(store), "--tokens", "16",
                                  "--json").stdout)
    return {"flavor": result["flavor"], "device": result["device"], "steps": result["step"],
            "stopped_at": stopped_at, "sleeps": result["sleeps"], "val_bpb": result["val_bpb"],
            "cpu_eval_bpb": ev["val_bpb"], "resume_gap_bpb": resume_gap, "tokens_per_s": result["tokens_per_s"],
            "flops_per_s": result.get("flops_per_s"), "mfu": result.get("mfu"),
            "sample_chars": len(sample["text"]), "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------- NCCL DDP through the local backend
def ddp_nccl(ctx: Ctx) -> dict[str, Any]:
    """Every collective on a real group (1 rank: what one GPU can hold), under our device-mapped
    backend and under a CUDA-only one (as `backend="nccl"` makes), then whole runs via run_local_ddp."""
    import numpy as np

    from nightshift import collectives
    from nightshift.models.holographic import distributed as holo
    from nightshift.models.macro_unit import distributed as macro
    from nightshift.orchestrator.backends.local_ddp import _free_port, run_local_ddp
    from nightshift.orchestrator.runs.config import build_run_config

    device = torch.device(ctx.device, 0) if ctx.device == "cuda" else torch.device("cpu")
    out: dict[str, Any] = {}
    backends = [None] if ctx.smoke else [None, "nccl"]  # None: backend_for(device)
    for backend in backends:
        name = backend or collectives.backend_for(device)
        collectives.init_process_group(rank=0, world_size=1, device=device, backend=backend,
                                       init_method=f"tcp://127.0.0.1:{_free_port()}")
        try:
            for where in ("cpu", device):
                t = torch.arange(4, dtype=torch.float64, device=where)
                assert collectives.all_reduce(t.clone()).tolist() == t.tolist()
                assert collectives.all_reduce(t.clone(), "max").device == t.device
                assert [p.tolist() for p in collectives.all_gather(t)] == [t.tolist()]
                rows = torch.randn(5, 3, device=where).half()
                assert torch.equal(torch.cat(holo.all_gather_rows(rows)), rows)
            assert collectives.all_gather_object({"cursor": 7}) == [{"cursor": 7}]
            assert collectives.broadcast_object([1, 2]) == [1, 2]
            collectives.barrier()
            arr = np.arange(6, dtype=np.uint64)
            assert [a.tolist() for a in macro.all_gather_array(arr)] == [arr.tolist()]
            assert macro.all_reduce_ints([3, 4]) == [3, 4]
            out[f"collectives[{name}]"] = "ok"
        finally:
            collectives.destroy_process_group()
    workers = max(1, min(2, torch.cuda.device_count())) if ctx.device == "cuda" else 1
    for model in ("transformer:tiny", "holographic:tiny") if not ctx.smoke else ("transformer:debug",):
        store = ctx.fresh_store(f"store-ddp-{model.replace(':', '-')}")
        config = build_run_config(ctx.dataset_id, model, {
            "train.device": ctx.device, "train.batch_size": "16", "train.eval_every": "10",
            "train.eval_max_bytes": "20000", "train.checkpoint_every": "10", "train.sleep_every": "160"
            if not model.startswith("transformer") else "0"}, steps=4 if ctx.smoke else 20)
        t0 = time.perf_counter()
        result = run_local_ddp(config, str(store), workers, tracking_uri="none", progress=False)
        if result["step"] != config.train.steps or not result["device"].startswith(ctx.device):
            raise RuntimeError(f"{model} via run_local_ddp: {result}")
        out[f"{model}.val_bpb"] = result["val_bpb"]
        out[f"{model}.seconds"] = time.perf_counter() - t0
    out["workers"] = workers
    return out


# ------------------------------------------------------------------------------ Ray Train, one GPU worker
def ray_gpu(ctx: Ctx) -> dict[str, Any]:
    import ray

    from nightshift.orchestrator.backends.ray_backend import run_on_ray
    from nightshift.orchestrator.runs.config import build_run_config

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=True, num_cpus=4,
             log_to_driver=False)
    out: dict[str, Any] = {}
    try:
        gpus = 0 if ctx.smoke else 1
        for model in ("transformer:debug",) if ctx.smoke else ("transformer:tiny", "holographic:tiny"):
            store = ctx.fresh_store(f"store-ray-{model.replace(':', '-')}")
            config = build_run_config(ctx.dataset_id, model, {
                "train.batch_size": "16", "train.eval_every": "0", "train.eval_max_bytes": "20000",
                "train.checkpoint_every": "10", "train.sleep_every": "160"
                if not model.startswith("transformer") else "0"}, steps=4 if ctx.smoke else 20)
            t0 = time.perf_counter()
            result = run_on_ray(config, str(store), workers=1, gpus_per_worker=gpus, cpus_per_worker=2,
                                tracking_uri="none")
            if result["step"] != config.train.steps or not result["device"].startswith(ctx.device):
                raise RuntimeError(f"{model} on Ray: {result}")
            out[f"{model}.device"] = result["device"]
            out[f"{model}.val_bpb"] = result["val_bpb"]
            out[f"{model}.seconds"] = time.perf_counter() - t0
    finally:
        ray.shutdown()
    return out


# ------------------------------------------------------------------------- the Modal body, via .local()
def modal_local(ctx: Ctx) -> dict[str, Any]:
    """`jobs/giant.py`'s function body on this machine's GPU(s): the giant run's default family."""
    spec = importlib.util.spec_from_file_location("nightshift_giant_app", ROOT / "jobs" / "giant.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    gpus = 0 if ctx.smoke else min(2, max(1, torch.cuda.device_count()))  # 2: the in-container DDP path
    flags = {"dataset": ctx.dataset_id, "model": "holographic:tiny", "max_samples": 64 if ctx.smoke else 640,
             "vocab_size": 257, "log_every": 2, "deep_log_every": 0, "generate_every": 0,
             "context_size": 16, "max_attractors": 20_000, "batch_size": 16, "sleep_every": 32 if ctx.smoke else 160,
             "sets": ["train.checkpoint_every=10", "train.eval_max_bytes=20000", f"train.device={ctx.device}"]}
    t0 = time.perf_counter()
    result = app.giant.local(flags, store=str(ctx.fresh_store("store-modal")), gpus=gpus, tracking_uri="none")
    if result["stop_reason"] != "finished" or not result["device"].startswith(ctx.device):
        raise RuntimeError(f"giant.local: {result}")
    return {"gpus": gpus, "device": result["device"], "steps": result["step"], "sleeps": result["sleeps"],
            "val_bpb": result["val_bpb"], "dataset_status": result["modal"]["dataset_status"],
            "seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------- throughput
def bench_transformer(ctx: Ctx) -> dict[str, Any]:
    """gpt2-124m training steps (bf16 autocast, fused AdamW), eager and compiled, side by side."""
    from nightshift.models.registry import resolve
    from nightshift.orchestrator.training.flops import device_peak_flops, mfu

    flavor, batch = ("debug", 2) if ctx.smoke else ("gpt2-124m", 16)
    cfg = resolve(f"transformer:{flavor}").config
    device = torch.device(ctx.device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    out: dict[str, Any] = {"flavor": flavor, "batch": batch, "seq_len": cfg.seq_len}
    peak = device_peak_flops(device)
    def measure(compiled: bool) -> None:
        torch.manual_seed(0)
        model = cfg.build(synthetic_vocab(50257)).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        forward = torch.compile(model) if compiled else model
        tokens = torch.randint(0, 50256, (batch, cfg.seq_len + 1), device=device)

        def step() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss, _ = forward(tokens)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        t0 = time.perf_counter()
        rate = timed_rate(step, ctx.device, warmup=1 if ctx.smoke else 3, seconds=0.5 if ctx.smoke else 6,
                          min_steps=2 if ctx.smoke else 10)
        tag = "compiled" if compiled else "eager"
        achieved = model.train_flops_per_sample() * batch * rate
        out[f"{tag}.tokens_per_s"] = rate * batch * cfg.seq_len
        out[f"{tag}.flops_per_s"] = achieved
        out[f"{tag}.mfu"] = mfu(achieved, peak)
        out[f"{tag}.seconds_incl_warmup"] = time.perf_counter() - t0  # compiled: the compile itself included

    for compiled in (False,) if ctx.smoke else (False, True):
        attempt(out, "compiled" if compiled else "eager", lambda c=compiled: measure(c))
    if "compiled.tokens_per_s" in out and "eager.tokens_per_s" in out:
        out["compile_speedup"] = out["compiled.tokens_per_s"] / out["eager.tokens_per_s"]
    out["peak_flops"] = peak
    return out


def bench_holographic(ctx: Ctx) -> dict[str, Any]:
    """Training samples/s at context 64 / 512 / 4096, and exact kNN queries/s over 1M and 10M keys."""
    from nightshift.models.holographic.store import knn
    from nightshift.models.registry import resolve

    device = torch.device(ctx.device)
    vocab = synthetic_vocab(50257)
    base = resolve("holographic:base").config
    out: dict[str, Any] = {}
    tokens_per_batch = 1 << (12 if ctx.smoke else 17)
    def train_rate(context: int) -> None:
        model = dataclasses.replace(base, context_size=context, max_attractors=50_000 if ctx.smoke else 1_000_000
                                    ).build(vocab).to(device)
        length = model.train_seq_len + 1
        batch = max(1, tokens_per_batch // length)
        rows = torch.randint(0, vocab.size - 1, (batch * 4, length), device=device)
        model.observe(rows[:batch])  # warm-up
        samples, start, i = 0, time.perf_counter(), 0
        while time.perf_counter() - start < (0.5 if ctx.smoke else 6):
            samples += int(model.observe(rows[(i % 4) * batch : (i % 4 + 1) * batch])["samples"])
            i += 1
        sync(ctx.device)
        out[f"ctx{context}.samples_per_s"] = samples / (time.perf_counter() - start)

    def query_rate(n: int) -> None:
        bank = torch.nn.functional.normalize(torch.randn(n, 16, device=device), dim=1)  # (N, 16) unit keys
        queries = torch.nn.functional.normalize(torch.randn(64 if ctx.smoke else 4096, 16, device=device), dim=1)
        rate = timed_rate(lambda: knn(queries, bank, k), ctx.device, warmup=1, seconds=0.3 if ctx.smoke else 4,
                          min_steps=1)
        out[f"knn{n // 1000}k.queries_per_s"] = rate * queries.shape[0]

    for context in (16,) if ctx.smoke else (64, 512, 4096):
        attempt(out, f"ctx{context}", lambda c=context: train_rate(c))
    k = base.knn_k
    for n in (20_000,) if ctx.smoke else (1_000_000, 10_000_000):
        attempt(out, f"knn{n // 1000}k", lambda n=n: query_rate(n))
    out["knn_k"] = k
    return out


def bench_attractor(ctx: Ctx) -> dict[str, Any]:
    """`a1` training steps (batch 64, V 8192 as benchmarks/attractor_throughput.py), bf16 autocast on CUDA."""
    from nightshift.models.registry import resolve
    from nightshift.orchestrator.training.flops import device_peak_flops, mfu

    device = torch.device(ctx.device)
    cfg = resolve("attractor:debug" if ctx.smoke else "attractor:a1").config
    model = cfg.build(synthetic_vocab(8192)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    batch = 8 if ctx.smoke else 64
    tokens = torch.randint(0, 8191, (batch, model.train_seq_len + 1), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss, _ = model(tokens)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t0 = time.perf_counter()
    step()  # the first step compiles the relaxation (Triton on CUDA): timed apart, never in the rate
    sync(ctx.device)
    first_step_s = time.perf_counter() - t0
    rate = timed_rate(step, ctx.device, warmup=2, seconds=0.5 if ctx.smoke else 8, min_steps=3)
    achieved = model.train_flops_per_sample() * batch * rate
    predicted = batch * (model.train_seq_len + 1 - model.context_length)  # targets per step
    return {"batch": batch, "first_step_s": first_step_s, "steps_per_s": rate, "tokens_per_s": rate * predicted,
            "flops_per_s": achieved,
            "mfu": mfu(achieved, device_peak_flops(device))}


SECTIONS: dict[str, Callable[[Ctx], dict[str, Any]]] = {
    **{f"train:{family}": (lambda ctx, f=family: train_family(ctx, f)) for family in FAMILY_RUNS},
    "ddp_nccl": ddp_nccl,
    "ray_gpu": ray_gpu,
    "modal_local": modal_local,
    "bench:transformer": bench_transformer,
    "bench:holographic": bench_holographic,
    "bench:attractor": bench_attractor,
}
