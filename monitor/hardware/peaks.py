"""Dense bf16 tensor-core peak FLOP/s per GPU, looked up by the name NVML reports: the denominator of MFU.

Dense means without 2:4 sparsity: datasheets headline the sparse figure, which is twice the dense one.
bf16 from Ampere on, fp16 before (V100, T4 have no bf16). GeForce cards run fp16/bf16 with fp32
accumulation at half their fp16-accumulate rate, and training accumulates in fp32, so that is the
figure used. Where NVIDIA publishes no tensor figure for a GeForce card ("derived"), the value is
2 × its fp32 rate: the ratio of the published 4090, 4080, 3090 and 3080 figures.
A laptop ("Laptop GPU") or unlisted card is unknown (None): `--peak-flops` gives it.
"""

from __future__ import annotations

import re

T = 1e12

# (pattern matched against the normalised name in full, FLOP/s); the first match wins.
_TABLE: tuple[tuple[str, float], ...] = (
    # --- Blackwell
    (r"gb200.*", 2500 * T),  # GB200 NVL72 datasheet: FP16/BF16 360 PFLOPS sparse / 72 GPUs / 2
    (r"b200.*", 2250 * T),  # HGX B200 datasheet: FP16/BF16 36 PFLOPS sparse / 8 GPUs / 2
    (r"b100.*", 1750 * T),  # HGX B100 datasheet: FP16/BF16 28 PFLOPS sparse / 8 GPUs / 2
    (r"rtx 5090( \d+gb)?", 209.5 * T),  # RTX Blackwell GPU architecture whitepaper: FP16 tensor, FP32 acc., dense
    (r"rtx 5080( \d+gb)?", 112.6 * T),  # derived: 2 × 56.3 TFLOPS fp32 (RTX 5080 specs)
    # --- Hopper
    (r"h100 nvl.*|h200 nvl.*", 835.5 * T),  # H100 NVL / H200 NVL datasheets: BF16 1,671 TFLOPS sparse
    (r"h100 pcie.*|h100 \d+gb pcie.*|h800 pcie.*", 756.5 * T),  # H100 PCIe datasheet: BF16 1,513 sparse
    (r"h100.*|h200.*|h800.*|gh200.*", 989.5 * T),  # H100 SXM5 / H200 / GH200 datasheets: BF16 1,979 sparse
    # --- Ampere, Ada (datacenter and professional)
    (r"a100.*|a800.*", 312 * T),  # A100 datasheet (40 GB and 80 GB, PCIe and SXM4): BF16 312 TFLOPS
    (r"a30( \d+gb)?", 165 * T),  # A30 datasheet: BF16 165 TFLOPS (330 sparse)
    (r"a40( \d+gb)?", 149.7 * T),  # A40 datasheet: BF16 149.7 TFLOPS (299.4 sparse)
    (r"a10g( \d+gb)?", 70 * T),  # AWS-only part, no NVIDIA datasheet: 70 TFLOPS (baseten.co, "NVIDIA A10 vs A10G")
    (r"a10( \d+gb)?", 125 * T),  # A10 datasheet: BF16 125 TFLOPS (250 sparse)
    (r"l40s( \d+gb)?", 362.05 * T),  # L40S datasheet: BF16 362.05 TFLOPS (733 sparse)
    (r"l40( \d+gb)?", 181.05 * T),  # L40 datasheet: BF16 181.05 TFLOPS (362.1 sparse)
    (r"l4( \d+gb)?", 121 * T),  # L4 datasheet: BF16 242 TFLOPS sparse
    (r"rtx 6000 ada generation", 364.25 * T),  # RTX 6000 Ada datasheet: FP8 1,457 sparse → BF16 dense / 4
    (r"rtx a6000", 154.8 * T),  # RTX A6000 datasheet: tensor 309.7 TFLOPS sparse
    # --- Volta, Turing (fp16: no bf16)
    (r"v100s.*", 130 * T),  # V100S PCIe datasheet: tensor 130 TFLOPS
    (r"v100 pcie.*", 112 * T),  # V100 PCIe datasheet: tensor 112 TFLOPS
    (r"v100.*", 125 * T),  # V100 SXM2 datasheet: tensor 125 TFLOPS
    (r"t4( \d+gb)?", 65 * T),  # T4 datasheet: mixed precision (FP16/FP32) 65 TFLOPS
    (r"quadro rtx [68]000|titan rtx", 130.5 * T),  # Turing whitepaper: Quadro RTX 6000/8000, TITAN RTX fp16 tensor
    # --- GeForce Ada (Ada whitepaper appendix: FP16 tensor with FP32 accumulate, dense)
    (r"rtx 4090( \d+gb)?", 165.2 * T),  # Ada whitepaper: 165.2
    (r"rtx 4080 super( \d+gb)?", 104.4 * T),  # derived: 2 × 52.2 TFLOPS fp32
    (r"rtx 4080( \d+gb)?", 97.5 * T),  # Ada whitepaper: 97.5
    (r"rtx 4070 ti super( \d+gb)?", 88.2 * T),  # derived: 2 × 44.1 TFLOPS fp32
    (r"rtx 4070 ti( \d+gb)?", 80.2 * T),  # derived: 2 × 40.1 TFLOPS fp32
    (r"rtx 4070 super( \d+gb)?", 71 * T),  # derived: 2 × 35.5 TFLOPS fp32
    (r"rtx 4070( \d+gb)?", 58.3 * T),  # derived: 2 × 29.15 TFLOPS fp32
    # --- GeForce Ampere (GA102 whitepaper: FP16 tensor with FP32 accumulate, dense)
    (r"rtx 3090 ti( \d+gb)?", 80 * T),  # derived: 2 × 40 TFLOPS fp32
    (r"rtx 3090( \d+gb)?", 71 * T),  # GA102 whitepaper: 71
    (r"rtx 3080 ti( \d+gb)?", 68.2 * T),  # derived: 2 × 34.1 TFLOPS fp32
    (r"rtx 3080( \d+gb)?", 59.5 * T),  # GA102 whitepaper: 59.5
)
_COMPILED = tuple((re.compile(p), flops) for p, flops in _TABLE)
_DROP = re.compile(r"\b(nvidia|geforce|tesla)\b")


def normalise(nvml_name: str) -> str:
    """`NVIDIA A100-SXM4-40GB` → `a100 sxm4 40gb`; `NVIDIA GeForce RTX 4070` → `rtx 4070`."""
    s = _DROP.sub(" ", nvml_name.lower().replace("-", " ").replace("_", " "))
    return " ".join(s.split())


def peak_flops(nvml_name: str) -> float | None:
    """Dense bf16 (fp16 before Ampere) tensor peak FLOP/s of one GPU, or None when the card is not known."""
    name = normalise(nvml_name)
    for pattern, flops in _COMPILED:
        if pattern.fullmatch(name):
            return flops
    return None
