"""Batch optimizer: KV math, profiles, recommendations and `routerscope doctor`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from routerscope.core.batch import (
    PROFILES,
    BatchOptimizer,
    DeviceInfo,
    HardwareInfo,
    ModelProfile,
    detect_hardware,
)

GiB = 1024**3


def test_kv_bytes_per_token_match_hand_computed() -> None:
    """KV per token = 2 x layers x kv_heads x head_dim x bytes (Llama-3.1-8B, Phi-3-mini)."""
    assert PROFILES["Llama-3.1-8B"].kv_bytes_per_token("fp16") == 131_072
    assert PROFILES["Phi-3-mini-4k"].kv_bytes_per_token("fp16") == 393_216
    assert PROFILES["Llama-3.1-8B"].kv_bytes_per_token("fp32") == 262_144


def test_required_profiles_present() -> None:
    """The seven named models all have profiles."""
    assert {"Llama-3.1-8B", "Llama-3.1-70B", "Mistral-7B-v0.3", "Qwen2.5-7B", "Phi-3-mini-4k",
            "Gemma-2-9B", "Mixtral-8x7B"} <= set(PROFILES)


def test_weights_by_dtype() -> None:
    """Weights scale with bytes per parameter: fp16 2, int8 1, int4 0.5."""
    p = PROFILES["Llama-3.1-8B"]
    assert p.weight_bytes("fp16") == 2 * p.parameters
    assert p.weight_bytes("int4") == p.parameters // 2


def test_from_hf_config(tmp_path: Path) -> None:
    """A Hugging Face config.json becomes a profile with the same KV math."""
    cfg = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 8, "max_position_embeddings": 131072,
           "intermediate_size": 14336, "vocab_size": 128256, "tie_word_embeddings": False}
    path = tmp_path / "llama" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    p = ModelProfile.from_hf_config(path)
    assert p.name == "llama" and p.head_dim == 128
    assert p.kv_bytes_per_token() == 131_072
    assert p.parameters == pytest.approx(8.03e9, rel=0.01)  # estimated from shapes


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    """A config that is not a decoder LM says which key is missing."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(ValueError, match="num_hidden_layers"):
        ModelProfile.from_hf_config(path)


def _hw(gpu_free: int) -> HardwareInfo:
    cpu = DeviceInfo("cpu", "cpu", "test", 16 * GiB, 8 * GiB)
    gpu = DeviceInfo("cuda:0", "cuda", "Test GPU", 80 * GiB, gpu_free, (9, 0))
    return HardwareInfo(8, 4, 16 * GiB, 8 * GiB, (cpu, gpu))


def test_recommendation_arithmetic() -> None:
    """max batch is the usable room over per-sequence bytes, hand-checked."""
    opt = BatchOptimizer(_hw(80 * GiB))
    gpu = opt.hardware.devices[1]
    r = opt.recommend("Llama-3.1-8B", gpu, context=8192, batch=4)
    p = PROFILES["Llama-3.1-8B"]
    usable = int(80 * GiB * 0.9) - 512 * 1024**2
    per_token = 131_072 + 4 * 4096 * 2
    assert r.usable_bytes == usable
    assert r.max_batch == (usable - p.weight_bytes("fp16")) // (8192 * per_token)
    assert r.max_context == min(p.max_positions, (usable - p.weight_bytes("fp16")) // (4 * per_token))
    assert r.fits


def test_does_not_fit_says_what_would() -> None:
    """A model too large for a device gets advice: quantisation and another device."""
    opt = BatchOptimizer(_hw(80 * GiB))
    cpu = opt.hardware.devices[0]
    r = opt.recommend("Llama-3.1-8B", cpu, context=4096, batch=1)
    assert not r.fits
    text = " ".join(r.advice)
    assert "quantise to int8" in text or "quantise to int4" in text
    assert "use cuda:0" in text
    r70 = opt.recommend("Llama-3.1-70B", opt.hardware.devices[1], context=4096)
    assert not r70.fits and any("int8" in a or "int4" in a for a in r70.advice)


def test_detect_hardware_sees_this_machine() -> None:
    """Detection reports at least one core and the CPU device with its RAM."""
    hw = detect_hardware()
    assert hw.cpu_logical >= 1 and hw.ram_total > 0
    assert hw.devices[0].name == "cpu" and hw.devices[0].total_bytes == hw.ram_total


@pytest.mark.parametrize("hide_torch", [False, True])
def test_doctor_runs_with_and_without_torch(hide_torch: bool) -> None:
    """`routerscope doctor` prints hardware and a table, with torch and without it."""
    prelude = "import sys; sys.modules['torch'] = None; " if hide_torch else ""
    code = prelude + "from routerscope.cli import main; raise SystemExit(main(['doctor']))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "RAM:" in out.stdout and "Llama-3.1-8B" in out.stdout
    assert ("not installed" in out.stdout) == hide_torch


def test_doctor_json_and_bad_model() -> None:
    """--json prints machine-readable output; an unknown model exits 2 with the choices."""
    from routerscope.core.batch import doctor

    with pytest.raises(ValueError, match="Phi-3-mini-4k"):
        doctor(models=["nope"])
    bad = subprocess.run([sys.executable, "-m", "routerscope", "doctor", "--model", "nope"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown model" in bad.stderr
    out = subprocess.run([sys.executable, "-m", "routerscope", "doctor", "--json",
                          "--model", "Phi-3-mini-4k"], capture_output=True, text=True, timeout=120)
    data = json.loads(out.stdout)
    assert data["recommendations"][0]["kv_bytes_per_token"] == 393_216


def test_doctor_table_lists_each_model_and_device() -> None:
    """The CLI's table has one row per model and device, from core's recommendations."""
    from routerscope.doctor_cli import format_table

    opt = BatchOptimizer(_hw(40 * GiB))
    out = format_table(opt.recommend_all(["Mistral-7B-v0.3"]), 4096, 1)
    rows = [line for line in out.splitlines() if line.startswith("Mistral-7B-v0.3")]
    assert {r.split()[1] for r in rows} == {"cpu", "cuda:0"}
