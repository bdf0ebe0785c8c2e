"""Pre-flight estimate of a run on a named device: memory, disk, speed, hours; refuse what cannot fit.

`nightshift plan` and `modal run jobs/giant.py ... --dry-run` print this before
any GPU is paid for. Every figure says where it comes from: counted (parameters,
bytes per stored row, taken from the family's own code), a formula (activations,
growth of the memory stores), or a recorded measurement (throughput from
benchmarks/RESULTS.md, see figures.py; else a FLOP estimate at an assumed
utilisation, and the output says so). Memory comes from each family's own
`Config.footprint` (models/footprint.py): a family's memory is its own design.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from nightshift.models.protocol import Vocab
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.planning import figures
from nightshift.orchestrator.planning.memory import MemoryEstimate, estimate_memory
from nightshift.orchestrator.planning.whole_run import Launcher, WholeRun, whole_run
from nightshift.orchestrator.runs.config import RunConfig

GB = 1e9
VOCAB_SIZES = {"bytes": 257, "gpt2": 50257, "r50k_base": 50257, "cl100k_base": 100277, "o200k_base": 200019}


@dataclass(frozen=True, slots=True)
class Device:
    """One accelerator (or the CPU) and the host memory a run may use beside it."""

    name: str
    memory: float | None  # bytes of accelerator memory per device; None = the CPU (host memory only)
    host: float  # bytes of host memory for the whole run (all devices of one node)
    host_source: str  # where `host` comes from
    peak_flops: float | None  # dense bf16 per device (orchestrator/training/flops.py); None on a CPU


# name -> (display, memory bytes, flops.py name fragment). A100 alone means 40 GB, as Modal reads it.
GPUS: dict[str, tuple[str, float, str]] = {
    "h100": ("H100 80GB", 80e9, "h100"),
    "h200": ("H200 141GB", 141e9, "h200"),
    "a100": ("A100 40GB", 40e9, "a100"),
    "a100-40gb": ("A100 40GB", 40e9, "a100"),
    "a100-80gb": ("A100 80GB", 80e9, "a100"),
}
ASSUMED_HOST_PER_GPU = 100e9  # a planning default, not a guarantee: Modal guarantees only a function's memory= request


def device_named(text: str, host_memory: float | None = None) -> tuple[Device, int]:
    """`H100`, `H100:8`, `H200`, `A100`, `A100-80GB`, `CPU` (any case) -> (Device, count)."""
    from nightshift.orchestrator.training.flops import peak_for_name

    name, sep, count_text = text.strip().lower().partition(":")
    try:
        count = int(count_text) if sep else 1
    except ValueError:
        count = 0
    accepted = "H100, H200, A100 (40GB), A100-80GB, CPU, optionally :COUNT (e.g. H100:8)"
    if count < 1:
        raise UserError(f"device {text!r}: the count must be an integer >= 1; accepted: {accepted}")
    if name == "cpu":
        total = host_memory or _this_host_memory()
        source = "--host-memory" if host_memory else "this machine's RAM"
        return Device("CPU", None, total, source, None), count
    if name not in GPUS:
        raise UserError(f"unknown device {text!r}; accepted: {accepted}")
    display, memory, fragment = GPUS[name]
    host = host_memory or ASSUMED_HOST_PER_GPU * count
    source = "--host-memory" if host_memory else f"assumed {ASSUMED_HOST_PER_GPU / GB:.0f} GB per GPU"
    return Device(display, memory, host, source, peak_for_name(fragment)), count


def _this_host_memory() -> float:
    import os

    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


@dataclass(frozen=True, slots=True)
class DataShape:
    """What the plan needs to know about the training text."""

    tokenizer: str
    train_tokens: int
    train_bytes: int
    valid_tokens: int
    source: str  # "manifest" (prepared) or "estimated from --max-bytes"


def data_from_bytes(tokenizer: str, train_bytes: int, valid_bytes: int) -> DataShape:
    per_token = figures.BYTES_PER_TOKEN.get(tokenizer)
    if per_token is None:
        raise UserError(f"tokenizer {tokenizer!r} has no recorded bytes/token; accepted: "
                        f"{', '.join(sorted(figures.BYTES_PER_TOKEN))}")
    return DataShape(tokenizer, int(train_bytes / per_token), train_bytes, int(valid_bytes / per_token),
                     f"estimated: {per_token:.2f} bytes/token ({tokenizer} on pg19, recorded)")


def data_from_manifest(manifest: dict[str, Any]) -> DataShape:
    train, valid = manifest["splits"]["train"]["totals"], manifest["splits"]["validation"]["totals"]
    return DataShape(manifest["tokenizer"]["name"], int(train["tokens"]), int(train["bytes"]), int(valid["tokens"]),
                     "the prepared dataset's manifest")


CPU_PER_GPU = 8.0  # host cores a GPU's container reserves (data reader, a host store's retrieval, checkpoints)
MEMORY_HEADROOM = 1.5  # the host figure is an estimate; the request leaves room for Python, MLflow, pyarrow
MIN_MEMORY_MIB = 16 * 1024  # preparing pg19/FineWeb shards and importing torch + mlflow need this much anyway


@dataclass(frozen=True, slots=True)
class ContainerRequest:
    """What a launcher reserves for one container of the run (Modal: the function's cpu= and memory=)."""

    cpu: float
    memory_mib: int


@dataclass(slots=True)
class Plan:
    config: RunConfig
    device: Device
    count: int
    data: DataShape
    memory: MemoryEstimate
    samples: int  # training sequences over the whole run
    seq_tokens: int  # tokens per training sequence (T + 1)
    samples_per_s: float | None
    rate_source: str
    shard_bytes: float
    checkpoints: int  # written over the run
    checkpoint_disk: float
    checkpoint_disk_note: str
    checkpoint_interval_min: float | None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    container_override: tuple[float | None, int | None] = (None, None)  # cpu, memory MiB the user asked for
    kept: int = 1  # checkpoints on disk at once (the retention policy's, + the one being written)
    run: WholeRun | None = None  # the whole run, phase by phase (whole_run.py)

    @property
    def hours(self) -> float | None:
        return self.samples / self.samples_per_s / 3600 if self.samples_per_s else None

    @property
    def checkpoint_write_s(self) -> tuple[float, float]:
        """(seconds to write the first checkpoint, seconds for a later one) at the recorded chunked rate."""
        m, rate = self.memory, figures.CHECKPOINT_BYTES_PER_S
        if not rate:  # no recorded write rate (benchmarks/results/scale_memory.json): no estimate
            return 0.0, 0.0
        later = m.checkpoint_bytes - (m.store_checkpoint_bytes * (1 - 1 / self.checkpoints) if m.store_appends else 0)
        return m.checkpoint_bytes / rate, later / rate

    @property
    def host_need(self) -> float:
        return self.memory.host_bytes * (self.count if self.device.memory is not None else 1)

    def container_request(self) -> ContainerRequest:
        """cpu= and memory= for the launcher, from this plan's host figure (jobs/giant.py asks Modal for them:
        Modal guarantees only what a function requests, by default a fraction of a core and 128 MiB)."""
        memory = max(MIN_MEMORY_MIB, math.ceil(self.host_need * MEMORY_HEADROOM / 2**20))
        cpu, asked = self.container_override
        return ContainerRequest(cpu=cpu or CPU_PER_GPU * max(1, self.count), memory_mib=asked or memory)

    def override_container(self, cpu: float | None, memory_bytes: float | None) -> None:
        """The user's own cpu= / memory= (`--container-cpu`, `--container-memory`); less memory than the plan's
        host figure is a problem (the container would be killed mid-run), less headroom only a choice."""
        if cpu is not None and cpu <= 0:
            self.problems.append(f"--container-cpu {cpu:g}: must be > 0 cores")
        mib = math.ceil(memory_bytes / 2**20) if memory_bytes else None
        if mib is not None and mib * 2**20 < self.host_need:
            self.problems.append(f"--container-memory {mib:,} MiB is less than the run's host memory "
                                 f"({self.host_need / 2**30:.1f} GiB); ask for at least "
                                 f"{math.ceil(self.host_need / 2**30)}GB, or leave it to the plan")
        self.container_override = (cpu, mib)

    def check(self) -> None:
        """Raise UserError with the first thing that cannot fit (one line)."""
        if self.problems:
            raise UserError(self.problems[0])

    def as_dict(self) -> dict[str, Any]:
        m = self.memory
        return {
            "model": self.config.model.name, "device": self.device.name, "devices": self.count,
            "parameters": m.parameters, "store_bytes": m.store_bytes, "store_on": m.store_on,
            "activation_bytes": m.activation_bytes, "device_bytes": m.device_bytes, "host_bytes": self.host_need,
            "device_memory": self.device.memory, "host_memory": self.device.host,
            "shard_bytes": self.shard_bytes, "checkpoint_bytes": m.checkpoint_bytes, "checkpoints": self.checkpoints,
            "checkpoint_disk_bytes": self.checkpoint_disk, "checkpoints_kept": self.kept, "samples": self.samples,
            "tokens": self.samples * self.seq_tokens, "samples_per_s": self.samples_per_s,
            "tokens_per_s": self.samples_per_s * self.seq_tokens if self.samples_per_s else None,
            "rate_source": self.rate_source, "hours": self.hours,
            "checkpoint_interval_minutes": self.checkpoint_interval_min,
            "checkpoint_write_seconds": self.checkpoint_write_s,
            "container": {"cpu": self.container_request().cpu, "memory_mib": self.container_request().memory_mib},
            "fits": not self.problems, "problems": self.problems, "warnings": self.warnings,
            "breakdown": m.breakdown,
            **({"whole_run": {"positions": self.run.counts.positions, "steps": self.run.counts.steps,
                              "sleeps": self.run.counts.sleeps, "log_lines": self.run.counts.log_lines,
                              "evaluations": self.run.counts.evaluations + 1,
                              "generations": self.run.counts.generations + 1, "epochs": self.run.epochs,
                              "seconds": self.run.seconds,
                              "phases": {p.name: {"count": p.count, "seconds": p.seconds, "source": p.source}
                                         for p in self.run.phases}}} if self.run else {}),
        }

    def render(self) -> str:
        m, cfg, d = self.memory, self.config, self.device
        gb = lambda x: f"{x / GB:,.2f} GB"  # noqa: E731
        epochs = self.samples * self.seq_tokens / max(1, self.data.train_tokens)
        lines = [
            f"plan: {cfg.model.name} on {self.count} x {d.name}"
            f" ({self.data.tokenizer}, {self.data.train_tokens:,} train tokens; {self.data.source})",
            f"  run           {cfg.train.steps:,} steps x batch {cfg.train.batch_size} = {self.samples:,} sequences"
            f" of {self.seq_tokens:,} tokens ({self.samples * self.seq_tokens:,.0f} tokens, {epochs:,.1f} epochs)",
            f"  parameters    {m.parameters:,}" + ("" if cfg.model.family in ("transformer", "attractor")
                                                   else " (memory family: its state is the store below)"),
            f"  store         {gb(m.store_bytes)} on the {m.store_on} ({m.store_note})",
            f"  activations   {gb(m.activation_bytes)} per step ({m.activation_note})",
        ]
        if d.memory is not None:
            lines.append(f"  device memory {gb(m.device_bytes)} of {gb(d.memory)} per device")
        lines += [
            f"  host memory   {gb(self.host_need)} of {gb(d.host)} ({d.host_source}); peak while checkpointing",
            f"  disk          shards {gb(self.shard_bytes)}; one checkpoint {gb(m.checkpoint_bytes)}, "
            f"{self.checkpoints:,} written, at most {self.kept} on disk (keep_checkpoints="
            f"{cfg.train.keep_checkpoints}, keep_every={cfg.train.keep_every} + the one being written): "
            f"{gb(self.checkpoint_disk)} ({self.checkpoint_disk_note})",
        ]
        if d.memory is not None:
            req = self.container_request()
            why = ("--container-cpu / --container-memory" if any(v is not None for v in self.container_override)
                   else f"the host figure x {MEMORY_HEADROOM:g}, at least {MIN_MEMORY_MIB:,}")
            lines.append(f"  container     cpu={req.cpu:g} memory={req.memory_mib:,} MiB ({why}; what jobs/giant.py "
                         "requests)")
        if self.samples_per_s:
            lines.append(f"  throughput    {self.samples_per_s * self.seq_tokens:,.0f} tokens/s "
                         f"({self.samples_per_s:,.2f} sequences/s; {self.rate_source})")
            lines.append(f"  time          {self.hours:,.1f} h")
        else:
            lines.append(f"  throughput    unknown ({self.rate_source})")
        if self.checkpoint_interval_min is not None:
            first, later = self.checkpoint_write_s
            lines.append(f"  checkpoints   every {self.checkpoint_interval_min:,.1f} min "
                         f"(checkpoint_every={cfg.train.checkpoint_every} steps, "
                         f"checkpoint_minutes={cfg.train.checkpoint_minutes:g}); writing one ~{first:,.0f} s, "
                         f"later ones ~{later:,.0f} s (recorded chunked rate, local disk)")
        if self.run is not None:
            from nightshift.orchestrator.runs.positions import positions_per_row

            lines += self.run.render(cfg.train.batch_size, positions_per_row(cfg))
        lines += [f"  warning: {w}" for w in self.warnings]
        lines.append(f"  REFUSED: {self.problems[0]}" if self.problems else "  fits: yes")
        return "\n".join(lines)


def plan_run(config: RunConfig, device: str, data: DataShape, *, host_memory: float | None = None,
             launcher: Launcher | None = None, disk: float | None = None, allow_epochs: bool = True) -> Plan:
    """The estimate for `config` on `device` (e.g. "H100:8") over `data`; never starts compute.

    `launcher` (its timeout x attempts), `disk` (bytes for checkpoints) and `allow_epochs=False` add the
    whole-run refusals (whole_run.py)."""
    dev, count = device_named(device, host_memory)
    vocab = Vocab(data.tokenizer, VOCAB_SIZES.get(data.tokenizer, 50257), VOCAB_SIZES.get(data.tokenizer, 50257) - 1)
    world = count if dev.memory is not None else 1
    mem = estimate_memory(config, vocab, world=world, on_gpu=dev.memory is not None,
                          train_tokens=data.train_tokens,
                          bytes_per_token=figures.BYTES_PER_TOKEN.get(data.tokenizer, 4.0), device_memory=dev.memory)
    samples = config.train.steps * config.train.batch_size
    seq_tokens = mem.seq_len + 1
    rate, source = figures.samples_per_second(config, mem, dev, count, data.tokenizer)
    token_bytes = 2 if vocab.size <= 1 << 16 else 4
    shard_bytes = (data.train_tokens + data.valid_tokens) * token_bytes * figures.SHARD_OVERHEAD
    interval = _checkpoint_interval(config, rate)
    hours = samples / rate / 3600 if rate else None
    n_ckpt = _checkpoint_count(config, hours, interval)
    kept = _kept(config, n_ckpt)
    disk_bytes, disk_note = _checkpoint_disk(mem, kept)
    plan = Plan(config, dev, count, data, mem, samples, seq_tokens, rate, source, shard_bytes, n_ckpt, disk_bytes,
                disk_note, interval, kept=kept)
    _judge(plan)
    plan.run = whole_run(plan, launcher=launcher, disk=disk, allow_epochs=allow_epochs,
                         valid_bytes=data.valid_tokens * figures.BYTES_PER_TOKEN.get(data.tokenizer, 4.0))
    plan.problems += plan.run.problems
    plan.warnings += plan.run.warnings
    return plan


def _kept(config: RunConfig, written: int) -> int:
    """Checkpoints on disk at the end under the retention policy, + 1 while the next one is written."""
    from nightshift.orchestrator.checkpointing.retention import retained_count

    t = config.train
    between = max(1, t.checkpoint_every or t.steps)
    return min(written, retained_count(written, between, t.keep_checkpoints, t.keep_every) + 1)


def _checkpoint_interval(config: RunConfig, rate: float | None) -> float | None:
    t = config.train
    by_steps = t.checkpoint_every * t.batch_size / rate / 60 if (rate and t.checkpoint_every) else None
    by_time = t.checkpoint_minutes or None
    candidates = [x for x in (by_steps, by_time) if x]
    return min(candidates) if candidates else None


def _checkpoint_count(config: RunConfig, hours: float | None, interval: float | None) -> int:
    if hours is not None and interval:
        return max(1, math.ceil(hours * 60 / interval))
    every = config.train.checkpoint_every
    return max(1, math.ceil(config.train.steps / every)) if every else 1


def _checkpoint_disk(mem: MemoryEstimate, n: int) -> tuple[float, str]:
    """`n` checkpoints on disk; chunks are shared, so only what changes between two is paid again."""
    changing = mem.checkpoint_bytes - mem.store_checkpoint_bytes  # weights/optimizer/counters: all new each time
    if mem.store_bytes == 0:
        return changing * n, mem.rewrite_note
    if mem.store_appends:  # append-only over the run: each chunk of the store is written once
        return changing * n + mem.store_checkpoint_bytes, "chunks shared: the store only appends, written once"
    return changing * n + mem.store_checkpoint_bytes * n, f"chunks shared, but {mem.rewrite_note}"


def _judge(plan: Plan) -> None:
    m, d = plan.memory, plan.device
    if d.memory is not None and m.device_bytes > d.memory:
        what = "the store" if m.store_on == "device" and m.store_bytes > 0.5 * m.device_bytes else "the model"
        plan.problems.append(
            f"{plan.config.model.name} needs {m.device_bytes / GB:,.1f} GB per device on {d.name} "
            f"({d.memory / GB:,.0f} GB): {what} does not fit ({_top(m)}); lower the store or batch, "
            f"or pick a larger device")
    if plan.host_need > d.host:
        plan.problems.append(
            f"{plan.config.model.name} needs {plan.host_need / GB:,.1f} GB of host memory, more than the "
            f"{d.host / GB:,.1f} GB available ({d.host_source}): {_top(m)}; lower max_attractors / "
            f"max_entries_per_order, or give more --host-memory")
    if plan.checkpoint_interval_min is not None and plan.checkpoint_write_s[1] > 15 * plan.checkpoint_interval_min:
        plan.warnings.append(f"a checkpoint takes ~{plan.checkpoint_write_s[1]:,.0f} s but comes every "
                             f"{plan.checkpoint_interval_min * 60:,.0f} s: raise checkpoint_every "
                             f"(--set checkpoint_every=N) or rely on checkpoint_minutes")
    if plan.samples * plan.seq_tokens > 20 * max(1, plan.data.train_tokens) and plan.config.model.family in (
            "holographic", "macro_unit"):
        plan.warnings.append("more than 20 epochs over the same text: a memory family stores repeats, "
                             "not new knowledge; more text or fewer samples")


def _top(m: MemoryEstimate) -> str:
    parts = sorted(m.breakdown.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{k} {v / GB:,.1f} GB" for k, v in parts)


def plan_giant(flags: Any, gpu: str, *, host_memory: float | None = None, launcher: Launcher | None = None,
               disk: float | None = None, allow_epochs: bool = False) -> Plan:
    """The plan of `modal run jobs/giant.py` flags (a GiantFlags) on `gpu` ("H100:8"), before any GPU starts."""
    from nightshift.orchestrator.runs.giant import giant_run_config, gpu_count, tokenizer_for
    from nightshift.pipelines.sizes import parse_size

    config, _ = giant_run_config(flags, "plan-000000000000", world=max(1, gpu_count(gpu)))
    data = data_from_bytes(tokenizer_for(flags), parse_size(flags.max_bytes, what="--max-bytes"),
                           parse_size(flags.valid_bytes, what="--valid-bytes"))
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, device="cuda"))
    return plan_run(config, gpu or "CPU", data, host_memory=host_memory, launcher=launcher, disk=disk,
                    allow_epochs=allow_epochs)
