"""Writes a deterministic multilingual benchmark text of about SIZE_MB megabytes from fixed test
data: the tokenizer corpus (whitespace runs, code, numbers, accents, CJK, Arabic, Devanagari,
emoji), the chat conversations and the training text, lines drawn at random with a fixed seed.
Usage: make_text.py OUT [SIZE_MB]"""
import json
import os
import random
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = sys.argv[1]
size = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
lines = [json.loads(l) for l in open(os.path.join(root, "tests/data/tokenizers/corpus.jsonl"),
                                      encoding="utf-8")]
lines += open(os.path.join(root, "tests/generators/train_text.txt"),
              encoding="utf-8").read().split("\n")
for conversation in json.load(open(os.path.join(root, "tests/data/tokenizers/conversations.json"),
                                   encoding="utf-8")):
    lines += [message["content"] for message in conversation]
rng = random.Random(1)
parts, total = [], 0
while total < size * 1e6:
    line = rng.choice(lines)
    parts.append(line)
    total += len(line.encode("utf-8")) + 1
with open(out, "w", encoding="utf-8", newline="") as handle:
    handle.write("\n".join(parts))
