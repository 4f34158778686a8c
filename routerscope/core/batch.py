"""Batch optimizer: hardware detection and batch-size / context-window advice.

Memory model, per device::

    usable      = memory free (GPU) or available (CPU) * utilization - fixed overhead
    weights     = parameters * bytes per weight (fp32 4, fp16/bf16 2, int8 1, int4 0.5)
    kv/token    = 2 (K and V) * layers * kv_heads * head_dim * bytes per KV element
    act/token   = ACTIVATION_FACTOR * hidden_size * bytes per activation element
    fits(b, n)  : weights + b * n * (kv/token + act/token) <= usable

The activation allowance is the live hidden states of one forward pass with a
fused attention kernel (a few hidden-size vectors per token); the utilisation
headroom (default 90 %) covers the allocator's fragmentation. KV elements use
the compute dtype (fp16 for quantised weights, as llama.cpp and vLLM default to).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from routerscope.core import otel, signals
from routerscope.core._log import get_logger

__all__ = [
    "DTYPE_BYTES",
    "PROFILES",
    "BatchOptimizer",
    "DeviceInfo",
    "DoctorReport",
    "HardwareInfo",
    "ModelProfile",
    "Recommendation",
    "detect_hardware",
    "doctor",
]

_log = get_logger("routerscope.batch")
_GB: Final = 1024**3

DTYPE_BYTES: Final[dict[str, float]] = {
    "fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0, "int4": 0.5,
}
KV_BYTES: Final[dict[str, float]] = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 2.0,
                                     "int4": 2.0}
ACTIVATION_FACTOR: Final = 4
CUDA_CONTEXT_OVERHEAD: Final = 512 * 1024**2  # CUDA context + cuBLAS workspaces
DEFAULT_UTILIZATION: Final = 0.9
QUANT_LADDER: Final = ("fp32", "fp16", "int8", "int4")


# --- hardware -------------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceInfo:
    name: str  # "cpu", "cuda:0", "mps"
    kind: str  # "cpu" | "cuda" | "mps"
    description: str
    total_bytes: int
    free_bytes: int
    compute_capability: tuple[int, int] | None = None


@dataclass(frozen=True)
class HardwareInfo:
    cpu_logical: int
    cpu_physical: int | None
    ram_total: int
    ram_available: int
    devices: tuple[DeviceInfo, ...]
    torch_version: str | None = None
    mps: bool = False

    @property
    def cuda(self) -> tuple[DeviceInfo, ...]:
        return tuple(d for d in self.devices if d.kind == "cuda")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _torch() -> Any:
    """torch if it is installed (imported here: hardware detection needs it), else None."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    try:
        import torch

        return torch
    except Exception:  # noqa: BLE001 - a broken torch install must not break detection
        return None


def detect_hardware(*, use_torch: bool = True) -> HardwareInfo:
    """CPU cores, RAM, CUDA devices (total/free, compute capability) and MPS."""
    import platform

    import psutil

    vm = psutil.virtual_memory()
    cpu_desc = platform.processor() or platform.machine()
    devices = [DeviceInfo("cpu", "cpu", cpu_desc, int(vm.total), int(vm.available))]
    torch = _torch() if use_torch else None
    mps = False
    version = None
    if torch is not None:
        version = str(torch.__version__)
        try:
            if torch.cuda.is_available():
                for i in range(torch.cuda.device_count()):
                    free, total = torch.cuda.mem_get_info(i)
                    devices.append(DeviceInfo(
                        f"cuda:{i}", "cuda", torch.cuda.get_device_name(i), int(total),
                        int(free), tuple(torch.cuda.get_device_capability(i)),
                    ))
        except Exception as exc:  # noqa: BLE001
            _log.warning("CUDA detection failed", error=type(exc).__name__)
        try:
            mps = bool(torch.backends.mps.is_available())
        except Exception:  # noqa: BLE001
            mps = False
        if mps:  # unified memory: what the GPU may use is what the system has free
            devices.append(DeviceInfo("mps", "mps", "Apple GPU (unified memory)", int(vm.total),
                                      int(vm.available)))
    return HardwareInfo(
        cpu_logical=psutil.cpu_count(logical=True) or 1,
        cpu_physical=psutil.cpu_count(logical=False),
        ram_total=int(vm.total), ram_available=int(vm.available),
        devices=tuple(devices), torch_version=version, mps=mps,
    )


# --- models -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelProfile:
    name: str
    layers: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    hidden_size: int
    max_positions: int
    parameters: int
    experts: int = 1

    def __post_init__(self) -> None:
        for f in ("layers", "attention_heads", "kv_heads", "head_dim", "hidden_size",
                  "max_positions", "parameters"):
            if getattr(self, f) <= 0:
                raise ValueError(f"{self.name}: {f} must be > 0")

    def weight_bytes(self, dtype: str) -> int:
        return int(self.parameters * _dtype(dtype))

    def kv_bytes_per_token(self, dtype: str = "fp16") -> int:
        return int(2 * self.layers * self.kv_heads * self.head_dim * KV_BYTES[_check(dtype)])

    def activation_bytes_per_token(self, dtype: str = "fp16") -> int:
        return int(ACTIVATION_FACTOR * self.hidden_size * KV_BYTES[_check(dtype)])

    @classmethod
    def from_hf_config(cls, config: dict[str, Any] | str | os.PathLike[str],
                       name: str | None = None) -> ModelProfile:
        """A profile from a Hugging Face ``config.json`` (path or parsed dict)."""
        if not isinstance(config, dict):
            path = Path(config)
            try:
                config = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValueError(f"cannot read a Hugging Face config from {path}: {exc}") from exc
            name = name or path.parent.name or path.stem
        assert isinstance(config, dict)
        cfg = config.get("text_config", config)  # multimodal configs nest the LM
        try:
            hidden = int(cfg["hidden_size"])
            layers = int(cfg["num_hidden_layers"])
            heads = int(cfg["num_attention_heads"])
        except KeyError as exc:
            raise ValueError(f"config lacks {exc.args[0]!r}: not a decoder LM config") from None
        kv = int(cfg.get("num_key_value_heads") or heads)
        head_dim = int(cfg.get("head_dim") or hidden // heads)
        max_pos = int(cfg.get("max_position_embeddings") or 4096)
        experts = int(cfg.get("num_local_experts") or cfg.get("num_experts") or 1)
        params = cfg.get("num_parameters") or _estimate_parameters(cfg, hidden, layers, heads, kv,
                                                                   head_dim, experts)
        return cls(name or str(cfg.get("_name_or_path") or cfg.get("model_type") or "model"),
                   layers, heads, kv, head_dim, hidden, max_pos, int(params), experts)


def _estimate_parameters(cfg: dict[str, Any], hidden: int, layers: int, heads: int, kv: int,
                         head_dim: int, experts: int) -> int:
    vocab = int(cfg.get("vocab_size") or 32000)
    inter = int(cfg.get("intermediate_size") or 4 * hidden)
    attn = hidden * heads * head_dim + 2 * hidden * kv * head_dim + heads * head_dim * hidden
    mlp = 3 * hidden * inter * experts + (hidden * experts if experts > 1 else 0)
    embed = vocab * hidden * (1 if cfg.get("tie_word_embeddings") else 2)
    return embed + layers * (attn + mlp + 2 * hidden) + hidden


def _check(dtype: str) -> str:
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPE_BYTES)}")
    return dtype


def _dtype(dtype: str) -> float:
    return DTYPE_BYTES[_check(dtype)]


# Values from each model's published config.json; parameters from its model card.
PROFILES: Final[dict[str, ModelProfile]] = {p.name: p for p in (
    ModelProfile("Llama-3.1-8B", 32, 32, 8, 128, 4096, 131072, 8_030_000_000),
    ModelProfile("Llama-3.1-70B", 80, 64, 8, 128, 8192, 131072, 70_600_000_000),
    ModelProfile("Mistral-7B-v0.3", 32, 32, 8, 128, 4096, 32768, 7_250_000_000),
    ModelProfile("Qwen2.5-7B", 28, 28, 4, 128, 3584, 131072, 7_620_000_000),
    ModelProfile("Phi-3-mini-4k", 32, 32, 32, 96, 3072, 4096, 3_820_000_000),
    ModelProfile("Gemma-2-9B", 42, 16, 8, 256, 3584, 8192, 9_240_000_000),
    ModelProfile("Mixtral-8x7B", 32, 32, 8, 128, 4096, 32768, 46_700_000_000, experts=8),
)}


# --- recommendations ----------------------------------------------------------------------

@dataclass(frozen=True)
class Recommendation:
    model: str
    device: str
    dtype: str
    fits: bool
    usable_bytes: int
    weight_bytes: int
    kv_bytes_per_token: int
    context: int
    batch: int
    max_batch: int  # at `context`
    max_context: int  # at `batch`
    advice: list[str] = field(default_factory=list)


class BatchOptimizer:
    """Recommends batch sizes and context lengths per model and device."""

    def __init__(self, hardware: HardwareInfo | None = None, *, dtype: str = "fp16",
                 utilization: float = DEFAULT_UTILIZATION,
                 profiles: dict[str, ModelProfile] | None = None) -> None:
        if not 0 < utilization <= 1:
            raise ValueError("utilization must be in (0, 1]")
        self.dtype = _check(dtype)
        self.utilization = utilization
        self._hardware = hardware
        self.profiles = dict(PROFILES if profiles is None else profiles)
        self.last: list[Recommendation] = []

    @property
    def hardware(self) -> HardwareInfo:
        if self._hardware is None:
            self._hardware = detect_hardware()
        return self._hardware

    def profile(self, model: str | ModelProfile) -> ModelProfile:
        if isinstance(model, ModelProfile):
            return model
        if model in self.profiles:
            return self.profiles[model]
        if os.path.exists(model):
            return ModelProfile.from_hf_config(model)
        raise ValueError(f"unknown model {model!r}: use one of {', '.join(self.profiles)} "
                         "or the path of a Hugging Face config.json")

    def usable_bytes(self, device: DeviceInfo) -> int:
        overhead = CUDA_CONTEXT_OVERHEAD if device.kind == "cuda" else 0
        return max(0, int(device.free_bytes * self.utilization) - overhead)

    def recommend(self, model: str | ModelProfile, device: DeviceInfo, *, context: int = 4096,
                  batch: int = 1, dtype: str | None = None,
                  advise: bool = True) -> Recommendation:
        if context < 1 or batch < 1:
            raise ValueError("context and batch must be >= 1")
        p = self.profile(model)
        dt = _check(dtype or self.dtype)
        context = min(context, p.max_positions)
        usable = self.usable_bytes(device)
        weights = p.weight_bytes(dt)
        per_token = p.kv_bytes_per_token(dt) + p.activation_bytes_per_token(dt)
        room = usable - weights
        max_batch = max(0, room // (context * per_token)) if room > 0 else 0
        max_ctx = min(p.max_positions, max(0, room // (batch * per_token))) if room > 0 else 0
        fits = max_batch >= batch
        advice: list[str] = []
        if not fits and advise:
            advice = self._advice(p, device, dt, context, batch, usable)
        return Recommendation(p.name, device.name, dt, fits, usable, weights,
                              p.kv_bytes_per_token(dt), context, batch, int(max_batch),
                              int(max_ctx), advice)

    def _advice(self, p: ModelProfile, device: DeviceInfo, dt: str, context: int, batch: int,
                usable: int) -> list[str]:
        out: list[str] = []
        weights = p.weight_bytes(dt)
        if weights > usable:
            out.append(f"weights alone need {weights / _GB:.1f} GiB at {dt}; "
                       f"{device.name} has {usable / _GB:.1f} GiB usable")
        start = QUANT_LADDER.index(dt) if dt in QUANT_LADDER else 1
        for q in QUANT_LADDER[start + 1:]:
            r = self.recommend(p, device, context=context, batch=batch, dtype=q, advise=False)
            if r.fits:
                out.append(f"quantise to {q}: batch up to {r.max_batch} at context {context}")
                break
        room = usable - weights
        if room > 0:
            per_token = p.kv_bytes_per_token(dt) + p.activation_bytes_per_token(dt)
            ctx = room // (batch * per_token)
            if ctx >= 256:
                out.append(f"shorten the context to {min(ctx, p.max_positions)} tokens "
                           f"at batch {batch}")
        for other in self.hardware.devices:
            if other.name == device.name:
                continue
            r = self.recommend(p, other, context=context, batch=batch, dtype=dt, advise=False)
            if r.fits:
                out.append(f"use {other.name}: batch up to {r.max_batch} at context {context}")
        if not out[1:] and weights > usable:
            out.append("no single device here fits it: shard it across GPUs or use a provider")
        return out

    def recommend_all(self, models: list[str] | None = None, *, context: int = 4096,
                      batch: int = 1) -> list[Recommendation]:
        recs = [self.recommend(m, d, context=context, batch=batch)
                for m in (models or list(self.profiles)) for d in self.hardware.devices]
        self.last = recs
        _publish(self)
        for r in recs:
            _log.info(signals.EVENT_BATCH_RECOMMENDATION, model=r.model, device=r.device,
                      dtype=r.dtype, fits=r.fits, max_batch=r.max_batch,
                      max_context=r.max_context, context=r.context)
        return recs


_published: list[BatchOptimizer] = []


def _publish(opt: BatchOptimizer) -> None:
    first = not _published
    _published[:] = [opt]
    if not first:
        return

    def read(kind: str) -> list[tuple[float, dict[str, Any]]]:
        if not _published:
            return []
        return [(float(getattr(r, kind)), {signals.ATTR_MODEL: r.model,
                                           signals.ATTR_DEVICE: r.device})
                for r in _published[0].last]

    otel.observe(signals.BATCH_RECOMMENDED_SIZE, lambda: read("max_batch"))
    otel.observe(signals.BATCH_RECOMMENDED_CONTEXT, lambda: read("max_context"))


def emit_hardware(hw: HardwareInfo) -> None:
    """The "Hardware detected" event."""
    _log.info(signals.EVENT_HARDWARE, cpu_logical=hw.cpu_logical, cpu_physical=hw.cpu_physical,
              ram_total_gib=round(hw.ram_total / _GB, 2),
              ram_available_gib=round(hw.ram_available / _GB, 2),
              devices=[d.name for d in hw.devices], torch=hw.torch_version, mps=hw.mps)


@dataclass(frozen=True)
class DoctorReport:
    """What ``routerscope doctor`` shows: the hardware and one recommendation per model/device."""

    hardware: HardwareInfo
    recommendations: list[Recommendation]
    context: int
    batch: int

    def to_dict(self) -> dict[str, Any]:
        return {"hardware": self.hardware.to_dict(),
                "recommendations": [asdict(r) for r in self.recommendations]}


def doctor(*, context: int = 4096, batch: int = 1,
           models: list[str] | None = None) -> DoctorReport:
    """Detect the hardware and recommend for ``models`` (default: every built-in profile).

    Raises ``ValueError`` for an unknown model (the message lists the choices).
    """
    opt = BatchOptimizer()
    recs = opt.recommend_all(models, context=context, batch=batch)
    return DoctorReport(opt.hardware, recs, context, batch)
