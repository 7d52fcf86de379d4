"""A small GGUF file written by gguf-py (the GGUF authors' writer), holding a metadata value of
every type (nested arrays included) and tensors of several ggml types, plus a JSON description
of what a reader must find in it.
Usage: python3 gen_gguf_fixture.py OUT.gguf OUT.json"""
import json
import sys

import gguf
import numpy as np

out_gguf, out_json = sys.argv[1:3]
writer = gguf.GGUFWriter(out_gguf, arch="llama")
T = gguf.GGUFValueType
writer.add_key_value("test.u8", 200, T.UINT8)
writer.add_key_value("test.i8", -100, T.INT8)
writer.add_key_value("test.u16", 60000, T.UINT16)
writer.add_key_value("test.i16", -30000, T.INT16)
writer.add_key_value("test.u32", 4000000000, T.UINT32)
writer.add_key_value("test.i32", -2000000000, T.INT32)
writer.add_key_value("test.f32", 0.25, T.FLOAT32)
writer.add_key_value("test.bool", True, T.BOOL)
writer.add_key_value("test.string", "héllo ✓", T.STRING)
writer.add_key_value("test.u64", 18000000000000000000, T.UINT64)
writer.add_key_value("test.i64", -9000000000000000000, T.INT64)
writer.add_key_value("test.f64", -1.5, T.FLOAT64)
writer.add_key_value("test.strings", ["a", "bb", ""], T.ARRAY, sub_type=T.STRING)
writer.add_key_value("test.nested", [[1, 2], [3]], T.ARRAY, sub_type=T.ARRAY)
rng = np.random.default_rng(3)
expected_tensors = {}
for name, qtype, shape in [("f32", gguf.GGMLQuantizationType.F32, (3, 64)),
                           ("f16", gguf.GGMLQuantizationType.F16, (2, 32)),
                           ("q8_0", gguf.GGMLQuantizationType.Q8_0, (4, 64)),
                           ("q4_1", gguf.GGMLQuantizationType.Q4_1, (2, 32)),
                           ("q4_k", gguf.GGMLQuantizationType.Q4_K, (2, 256))]:
    values = rng.standard_normal(shape).astype(np.float32)
    if qtype == gguf.GGMLQuantizationType.F32:
        data = values
    elif qtype == gguf.GGMLQuantizationType.F16:
        data = values.astype(np.float16)
    elif qtype == gguf.GGMLQuantizationType.Q4_K:  # gguf-py cannot encode K types: random blocks
        data = rng.integers(0, 256, size=(shape[0], 144 * shape[1] // 256), dtype=np.uint8)
        for offset in (0, 2):
            halves = rng.uniform(-0.05, 0.05, size=(shape[0], shape[1] // 256)).astype(np.float16)
            data.reshape(shape[0], -1, 144)[:, :, offset:offset + 2] = \
                halves.view(np.uint8).reshape(shape[0], -1, 2)
    else:
        data = gguf.quants.quantize(values, qtype)
    writer.add_tensor(name, data, raw_dtype=qtype)
    decoded = gguf.quants.dequantize(data, qtype) if data.dtype == np.uint8 else data.astype(np.float32)
    expected_tensors[name] = {"type": qtype.name, "shape": list(shape),
                              "values": [float(v) for v in decoded.reshape(-1)]}
writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_tensors_to_file()
writer.close()
json.dump({"metadata": {"test.u8": 200, "test.i8": -100, "test.u16": 60000, "test.i16": -30000,
                        "test.u32": 4000000000, "test.i32": -2000000000, "test.f32": 0.25,
                        "test.bool": True, "test.string": "héllo ✓",
                        "test.u64": 18000000000000000000, "test.i64": -9000000000000000000,
                        "test.f64": -1.5, "test.strings": ["a", "bb", ""],
                        "test.nested": [[1, 2], [3]], "general.architecture": "llama"},
           "tensors": expected_tensors}, open(out_json, "w"), ensure_ascii=False)
