"""Reference decodings of ggml block formats from gguf-py (the GGUF authors' Python package).

Random blocks of each type (their f16 scale fields set to finite values) and the floats that
gguf.quants.dequantize gives for them, written as one safetensors file:
<TYPE>.blocks (U8, raw bytes) and <TYPE>.values (F32).
Usage: python3 gen_quant_blocks.py OUT.safetensors"""
import sys

import gguf
import numpy as np
from gguf.quants import dequantize
from safetensors.numpy import save_file

rng = np.random.default_rng(7)
# (type, byte offsets of its f16 fields within a block)
TYPES = {"Q8_0": [0], "Q4_0": [0], "Q4_1": [0, 2], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}
tensors = {}
for name, half_offsets in TYPES.items():
    qtype = gguf.GGMLQuantizationType[name]
    block_elements, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    blocks = 8
    raw = rng.integers(0, 256, size=(blocks, block_bytes), dtype=np.uint8)
    for offset in half_offsets:
        halves = rng.uniform(-0.05, 0.05, size=blocks).astype(np.float16)
        raw[:, offset:offset + 2] = halves.view(np.uint8).reshape(blocks, 2)
    values = dequantize(raw.reshape(-1), qtype).astype(np.float32).reshape(-1)
    assert values.size == blocks * block_elements
    tensors[f"{name}.blocks"] = raw.reshape(-1)
    tensors[f"{name}.values"] = values
save_file(tensors, sys.argv[1])
print("gguf", getattr(gguf, "__version__", "?"), {k: v.shape for k, v in tensors.items()})
