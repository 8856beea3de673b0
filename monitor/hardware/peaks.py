"""The GPU table: dense bf16 tensor peak, memory and typical board power per GPU, looked up by the name
NVML reports (or a user types: `--gpu "RTX 4070"`). The peak is the denominator of MFU and of `plan`'s
time band; the power gives `plan`'s energy.

Dense means without 2:4 sparsity: datasheets headline the sparse figure, which is twice the dense one.
bf16 from Ampere on, fp16 before (V100, T4 have no bf16). GeForce cards run fp16/bf16 with fp32
accumulation at half their fp16-accumulate rate, and training accumulates in fp32, so that is the
figure used. Where NVIDIA publishes no tensor figure for a GeForce card ("derived"), the value is
2 × its fp32 rate: the ratio of the published 4090, 4080, 3090 and 3080 figures.
Memory is the datasheet's (GB as marketed; GDDR and HBM sizes are binary, so GiB); power is the board
power (TDP/TGP) of the usual variant: training draws somewhat less.
A laptop ("Laptop GPU") or unlisted card is unknown (None): `--peak-flops` gives it.
"""

from __future__ import annotations

import re

from monitor.snapshot import GpuSpec

T = 1e12

GEFORCE = "GeForce: bf16 with fp32 accumulate runs at half the fp16-accumulate rate; this is that half rate"
DERIVED = ("no NVIDIA tensor figure: 2 × the fp32 rate (GeForce runs bf16 with fp32 accumulate at half the "
           "fp16-accumulate rate)")


def _g(name: str, tflops: float, memory_gb: float | None = None, power_w: float | None = None,
       note: str | None = None) -> GpuSpec:
    return GpuSpec(name, tflops * T, memory_gb, power_w, note)


# (pattern matched against the normalised name in full, spec); the first match wins.
_TABLE: tuple[tuple[str, GpuSpec], ...] = (
    # --- Blackwell
    # GB200 NVL72 datasheet: FP16/BF16 360 PFLOPS sparse / 72 GPUs / 2; 13.4 TB HBM3e / 72; 1,200 W config
    (r"gb200.*", _g("GB200", 2500, 186, 1200)),
    # HGX B200 datasheet: FP16/BF16 36 PFLOPS sparse / 8 GPUs / 2; 1,440 GB / 8; 1,000 W per GPU
    (r"b200.*", _g("B200", 2250, 180, 1000)),
    # HGX B100 datasheet: FP16/BF16 28 PFLOPS sparse / 8 GPUs / 2; 1,440 GB / 8; 700 W
    (r"b100.*", _g("B100", 1750, 180, 700)),
    # RTX Blackwell whitepaper: FP16 tensor, FP32 acc., dense; 32 GB GDDR7; 575 W TGP
    (r"rtx 5090( \d+gb)?", _g("RTX 5090", 209.5, 32, 575, GEFORCE)),
    # derived: 2 × 56.3 TFLOPS fp32 (RTX 5080 specs); 16 GB; 360 W
    (r"rtx 5080( \d+gb)?", _g("RTX 5080", 112.6, 16, 360, DERIVED)),
    # --- Hopper
    # H200 NVL datasheet: BF16 1,671 TFLOPS sparse; 141 GB; up to 600 W
    (r"h200 nvl.*", _g("H200 NVL", 835.5, 141, 600)),
    # H100 NVL datasheet: BF16 1,671 TFLOPS sparse; 94 GB; 350–400 W
    (r"h100 nvl.*", _g("H100 NVL", 835.5, 94, 400)),
    # H100 PCIe datasheet: BF16 1,513 sparse; 80 GB; 350 W
    (r"h100 pcie.*|h100 \d+gb pcie.*|h800 pcie.*", _g("H100 PCIe", 756.5, 80, 350)),
    # H200 SXM datasheet: BF16 1,979 TFLOPS sparse; 141 GB HBM3e; up to 700 W
    (r"h200.*", _g("H200", 989.5, 141, 700)),
    # GH200 datasheet: BF16 1,979 sparse; 96 GB HBM3 (module power covers the CPU too)
    (r"gh200.*", _g("GH200", 989.5, 96)),
    # H100 SXM5 datasheet: BF16 1,979 TFLOPS sparse; 80 GB; up to 700 W
    (r"h100.*|h800.*", _g("H100 SXM", 989.5, 80, 700)),
    # --- Ampere, Ada (datacenter and professional)
    # A100 datasheet: BF16 312 TFLOPS; 80 GB PCIe 300 W
    (r"a100 80gb pcie.*", _g("A100 80GB PCIe", 312, 80, 300)),
    # A100 datasheet: 40 GB PCIe 250 W
    (r"a100 pcie.*", _g("A100 40GB PCIe", 312, 40, 250)),
    # A100 datasheet: 80 GB SXM4 400 W
    (r"a100 (sxm4 )?80gb.*", _g("A100 80GB", 312, 80, 400)),
    # A100 datasheet: 40 GB SXM4 400 W
    (r"a100.*|a800.*", _g("A100 40GB", 312, 40, 400)),
    # A30 datasheet: BF16 165 TFLOPS (330 sparse); 24 GB; 165 W
    (r"a30( \d+gb)?", _g("A30", 165, 24, 165)),
    # A40 datasheet: BF16 149.7 TFLOPS (299.4 sparse); 48 GB; 300 W
    (r"a40( \d+gb)?", _g("A40", 149.7, 48, 300)),
    (r"a10g( \d+gb)?", _g("A10G", 70, 24, 300,  # AWS-only part: 70 TFLOPS (baseten.co, "NVIDIA A10 vs A10G"); 24 GB
                         "AWS-only part with no NVIDIA datasheet: the peak is a third-party figure")),
    # A10 datasheet: BF16 125 TFLOPS (250 sparse); 24 GB; 150 W
    (r"a10( \d+gb)?", _g("A10", 125, 24, 150)),
    # L40S datasheet: BF16 362.05 TFLOPS (733 sparse); 48 GB; 350 W
    (r"l40s( \d+gb)?", _g("L40S", 362.05, 48, 350)),
    # L40 datasheet: BF16 181.05 TFLOPS (362.1 sparse); 48 GB; 300 W
    (r"l40( \d+gb)?", _g("L40", 181.05, 48, 300)),
    # L4 datasheet: BF16 242 TFLOPS sparse; 24 GB; 72 W
    (r"l4( \d+gb)?", _g("L4", 121, 24, 72)),
    # RTX 6000 Ada datasheet: FP8 1,457 sparse → BF16 dense / 4; 48 GB; 300 W
    (r"rtx 6000 ada generation", _g("RTX 6000 Ada", 364.25, 48, 300)),
    # RTX A6000 datasheet: tensor 309.7 TFLOPS sparse; 48 GB; 300 W
    (r"rtx a6000", _g("RTX A6000", 154.8, 48, 300)),
    # --- Volta, Turing (fp16: no bf16)
    # V100S PCIe datasheet: tensor 130 TFLOPS; 32 GB; 250 W
    (r"v100s.*", _g("V100S", 130, 32, 250)),
    # V100 PCIe datasheet: tensor 112 TFLOPS; 16/32 GB; 250 W
    (r"v100 pcie.*", _g("V100 PCIe", 112, 16, 250)),
    # V100 SXM2 datasheet: tensor 125 TFLOPS; 16/32 GB; 300 W
    (r"v100.*", _g("V100 SXM2", 125, 16, 300)),
    # T4 datasheet: mixed precision (FP16/FP32) 65 TFLOPS; 16 GB; 70 W
    (r"t4( \d+gb)?", _g("T4", 65, 16, 70)),
    # Turing whitepaper: fp16 tensor
    (r"quadro rtx [68]000|titan rtx", _g("Quadro RTX 6000/8000, TITAN RTX", 130.5)),
    # --- GeForce Ada (Ada whitepaper appendix: FP16 tensor with FP32 accumulate, dense; TGPs from NVIDIA's spec pages)
    # Ada whitepaper: 165.2; 24 GB; 450 W
    (r"rtx 4090( \d+gb)?", _g("RTX 4090", 165.2, 24, 450, GEFORCE)),
    # derived: 2 × 52.2 TFLOPS fp32; 16 GB; 320 W
    (r"rtx 4080 super( \d+gb)?", _g("RTX 4080 SUPER", 104.4, 16, 320, DERIVED)),
    # Ada whitepaper: 97.5; 16 GB; 320 W
    (r"rtx 4080( \d+gb)?", _g("RTX 4080", 97.5, 16, 320, GEFORCE)),
    # derived: 2 × 44.1 TFLOPS fp32; 16 GB; 285 W
    (r"rtx 4070 ti super( \d+gb)?", _g("RTX 4070 Ti SUPER", 88.2, 16, 285, DERIVED)),
    # derived: 2 × 40.1 TFLOPS fp32 (whitepaper's "4080 12GB": 319 sparse fp16-acc / 4); 12 GB; 285 W
    (r"rtx 4070 ti( \d+gb)?", _g("RTX 4070 Ti", 80.2, 12, 285, DERIVED)),
    # derived: 2 × 35.5 TFLOPS fp32; 12 GB; 220 W
    (r"rtx 4070 super( \d+gb)?", _g("RTX 4070 SUPER", 71, 12, 220, DERIVED)),
    # derived: 2 × 29.15 TFLOPS fp32 (5,888 cores × 2.475 GHz × 2); 12 GB; 200 W TGP
    (r"rtx 4070( \d+gb)?", _g("RTX 4070", 58.3, 12, 200, DERIVED)),
    # derived: 2 × 22.06 TFLOPS fp32; 16 GB; 165 W
    (r"rtx 4060 ti 16gb", _g("RTX 4060 Ti 16GB", 44.1, 16, 165, DERIVED)),
    # derived: 2 × 22.06 TFLOPS fp32 (4,352 cores × 2.535 GHz × 2); 8 GB; 160 W
    (r"rtx 4060 ti( 8gb)?", _g("RTX 4060 Ti", 44.1, 8, 160, DERIVED)),
    # --- GeForce Ampere (GA102 whitepaper: FP16 tensor with FP32 accumulate, dense)
    # derived: 2 × 40 TFLOPS fp32; 24 GB; 450 W
    (r"rtx 3090 ti( \d+gb)?", _g("RTX 3090 Ti", 80, 24, 450, DERIVED)),
    # GA102 whitepaper: 71; 24 GB; 350 W
    (r"rtx 3090( \d+gb)?", _g("RTX 3090", 71, 24, 350, GEFORCE)),
    # derived: 2 × 34.1 TFLOPS fp32; 12 GB; 350 W
    (r"rtx 3080 ti( \d+gb)?", _g("RTX 3080 Ti", 68.2, 12, 350, DERIVED)),
    # derived: 2 × 30.6 TFLOPS fp32; 12 GB; 350 W
    (r"rtx 3080 12gb", _g("RTX 3080 12GB", 61.2, 12, 350, DERIVED)),
    # GA102 whitepaper: 59.5; 10 GB; 320 W
    (r"rtx 3080( \d+gb)?", _g("RTX 3080", 59.5, 10, 320, GEFORCE)),
    # derived: 2 × 16.2 TFLOPS fp32; 8 GB; 200 W
    (r"rtx 3060 ti( \d+gb)?", _g("RTX 3060 Ti", 32.4, 8, 200, DERIVED)),
    # derived: 2 × 12.74 TFLOPS fp32 (3,584 cores × 1.777 GHz × 2); 12 GB; 170 W
    (r"rtx 3060( \d+gb)?", _g("RTX 3060", 25.5, 12, 170, DERIVED)),
)
_COMPILED = tuple((re.compile(p), spec) for p, spec in _TABLE)
_DROP = re.compile(r"\b(nvidia|geforce|tesla)\b")


def normalise(nvml_name: str) -> str:
    """`NVIDIA A100-SXM4-40GB` → `a100 sxm4 40gb`; `NVIDIA GeForce RTX 4070` → `rtx 4070`."""
    s = _DROP.sub(" ", nvml_name.lower().replace("-", " ").replace("_", " "))
    return " ".join(s.split())


def _match(norm: str) -> GpuSpec | None:
    for pattern, spec in _COMPILED:
        if pattern.fullmatch(norm):
            return spec
    return None


def lookup(name: str) -> GpuSpec | None:
    """The table's row for an NVML name or a name as people write it (`4090` is read as `RTX 4090`)."""
    norm = normalise(name)
    return _match(norm) or _match(f"rtx {norm}") if norm else None


def peak_flops(nvml_name: str) -> float | None:
    """Dense bf16 (fp16 before Ampere) tensor peak FLOP/s of one GPU, or None when the card is not known."""
    spec = _match(normalise(nvml_name))
    return spec.peak_flops if spec else None


def known_names() -> tuple[str, ...]:
    """The table's names, for an error that says which GPUs there are."""
    return tuple(spec.name for _, spec in _TABLE)
