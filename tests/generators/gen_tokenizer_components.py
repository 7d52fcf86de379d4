"""Reference encodings for every tokenizer.json component flow2 implements.

Trains small BPE models with Hugging Face `tokenizers` on the corpus strings plus
train_text.txt, wires each case's normalizer / pre-tokenizer / added tokens / post-processor /
decoder, and writes OUTDIR/<case>/tokenizer.json and expected.jsonl with, per corpus string:
text, ids, ids_with_special, tokens, decoded (keeping special tokens) and decoded_skip_special.

Usage: python3 gen_tokenizer_components.py CORPUS.jsonl TRAIN_TEXT OUTDIR
"""
import json
import os
import sys

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

CORPUS, TRAIN_TEXT, OUT = sys.argv[1:4]
corpus = [json.loads(line) for line in open(CORPUS, encoding="utf-8")]
extra = ["<special>hello</special>", "a <mask> b<mask>c", " <mask>  x", "word<sep>word <sep> w",
         "SEPARATE sep <sep>", "don't stop", "MiXeD CaSe ÀÉÎ", "tabs\tand\nlines",
         "ǅemal ﬁve ①②③ ｗｉｄｅ", "x-y--z---w", "3.14 and 2,000", "unknownΩchars ✓"]
texts = corpus + extra
train_lines = open(TRAIN_TEXT, encoding="utf-8").read().splitlines() + texts


def byte_level_bpe(**options):
    tok = Tokenizer(models.BPE(**options))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(train_lines, trainer)
    tok.decoder = decoders.ByteLevel()
    return tok


def char_bpe(pre_tokenizer, alphabet_limit=None, **options):
    """A BPE over characters (not bytes), so that unknown characters exist."""
    tok = Tokenizer(models.BPE(**options))
    tok.pre_tokenizer = pre_tokenizer
    kwargs = {}
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if options.get(key):
            kwargs[key] = options[key]
    if alphabet_limit:
        kwargs["limit_alphabet"] = alphabet_limit
    trainer = trainers.BpeTrainer(vocab_size=500, show_progress=False,
                                  special_tokens=[options["unk_token"]] if options.get("unk_token") else [],
                                  **kwargs)
    tok.train_from_iterator(train_lines, trainer)
    return tok


def add_byte_tokens(tok):
    tok.add_tokens([f"<0x{b:02X}>" for b in range(256)])


cases = {}

# --- normalizers, on a byte-level BPE
for name, normalizer in {
    "norm_nfd": normalizers.NFD(),
    "norm_nfkc": normalizers.NFKC(),
    "norm_nfkd": normalizers.NFKD(),
    "norm_lowercase": normalizers.Lowercase(),
    "norm_strip": normalizers.Strip(left=True, right=True),
    "norm_strip_left": normalizers.Strip(left=True, right=False),
    "norm_replace_regex": normalizers.Replace(Regex(r"\s+"), " "),
    "norm_sequence": normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(),
                                           normalizers.Prepend("_")]),
    "norm_bert": normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                            strip_accents=True, lowercase=True),
}.items():
    tok = byte_level_bpe()
    tok.normalizer = normalizer
    cases[name] = tok

# --- pre-tokenizers
for behavior in ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"]:
    for invert in (False, True):
        tok = byte_level_bpe()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"[-\s]"), behavior=behavior, invert=invert),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        cases[f"split_{behavior}{'_invert' if invert else ''}"] = tok
tok = byte_level_bpe()
tok.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Split("-", behavior="contiguous"),
    pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
cases["split_string_bytelevel_prefix"] = tok
tok = byte_level_bpe()
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False)
cases["bytelevel_no_regex_prefix"] = tok
for scheme in ("always", "first", "never"):
    for split in (True, False):
        tok = char_bpe(pre_tokenizers.Metaspace(prepend_scheme=scheme, split=split),
                       unk_token="<unk>")
        tok.decoder = decoders.Metaspace(prepend_scheme=scheme, split=split)
        tok.add_special_tokens(["<mask>"])
        cases[f"metaspace_{scheme}{'_split' if split else ''}"] = tok
for individual in (True, False):
    tok = byte_level_bpe()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=individual),
                                                 pre_tokenizers.ByteLevel(use_regex=False,
                                                                          add_prefix_space=False)])
    cases[f"digits{'_individual' if individual else ''}"] = tok
for name, pre in {"whitespace": pre_tokenizers.Whitespace(),
                  "whitespace_split": pre_tokenizers.WhitespaceSplit(),
                  "punctuation": pre_tokenizers.Punctuation(),
                  "punctuation_merged": pre_tokenizers.Punctuation(behavior="merged_with_previous"),
                  "bert_pre_tokenizer": pre_tokenizers.BertPreTokenizer()}.items():
    tok = char_bpe(pre, unk_token="[UNK]", continuing_subword_prefix="##")
    tok.decoder = decoders.WordPiece(prefix="##")
    cases[name] = tok

# --- model options
tok = char_bpe(pre_tokenizers.Whitespace(), alphabet_limit=40, unk_token="<unk>", fuse_unk=True)
cases["model_unk_fused"] = tok
tok = char_bpe(pre_tokenizers.Whitespace(), alphabet_limit=40, unk_token="<unk>", fuse_unk=False)
cases["model_unk_unfused"] = tok
tok = char_bpe(pre_tokenizers.Whitespace(), unk_token="<unk>", end_of_word_suffix="</w>")
tok.decoder = decoders.BPEDecoder(suffix="</w>")
cases["model_end_of_word_suffix"] = tok
tok = char_bpe(pre_tokenizers.Metaspace(), alphabet_limit=40, unk_token="<unk>", byte_fallback=True)
add_byte_tokens(tok)
tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                 decoders.Fuse(), decoders.Strip(" ", 1, 0)])
cases["model_byte_fallback"] = tok
tok = byte_level_bpe(ignore_merges=True)
cases["model_ignore_merges"] = tok

# --- added tokens
tok = byte_level_bpe()
tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False),
                        AddedToken("<sep>", lstrip=False, rstrip=True),
                        AddedToken("<special>", special=True),
                        AddedToken("</special>", special=True)])
tok.add_tokens([AddedToken("sep", single_word=True), AddedToken("hello", normalized=True),
                AddedToken("ÀÉ", normalized=False)])
tok.normalizer = normalizers.Lowercase()
cases["added_tokens"] = tok

# --- post-processors
tok = byte_level_bpe()
tok.add_special_tokens(["<s>", "</s>"])
tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> $B:1 </s>:1",
                                                   special_tokens=[("<s>", tok.token_to_id("<s>")),
                                                                   ("</s>", tok.token_to_id("</s>"))])
cases["post_template_bos_eos"] = tok
tok = char_bpe(pre_tokenizers.BertPreTokenizer(), unk_token="[UNK]", continuing_subword_prefix="##")
tok.add_special_tokens(["[CLS]", "[SEP]"])
tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                               ("[CLS]", tok.token_to_id("[CLS]")))
tok.decoder = decoders.WordPiece()
cases["post_bert"] = tok
tok = byte_level_bpe()
tok.add_special_tokens(["<s>", "</s>"])
tok.post_processor = processors.Sequence([
    processors.ByteLevel(trim_offsets=False),
    processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))])
cases["post_sequence_roberta"] = tok

# --- decoders
tok = byte_level_bpe()
# Strip before ByteLevel: the reference panics on Strip of an empty string.
tok.decoder = decoders.Sequence([decoders.Strip("Ġ", 1, 0), decoders.Replace("e", "E"),
                                 decoders.ByteLevel()])
cases["decoder_sequence_replace_strip"] = tok

os.makedirs(OUT, exist_ok=True)
for name, tok in cases.items():
    directory = os.path.join(OUT, name)
    os.makedirs(directory, exist_ok=True)
    tok.save(os.path.join(directory, "tokenizer.json"))
    with open(os.path.join(directory, "expected.jsonl"), "w", encoding="utf-8") as handle:
        for text in texts:
            plain = tok.encode(text, add_special_tokens=False)
            special = tok.encode(text, add_special_tokens=True)
            row = {"text": text, "ids": plain.ids, "ids_with_special": special.ids,
                   "tokens": plain.tokens,
                   "decoded": tok.decode(special.ids, skip_special_tokens=False),
                   "decoded_skip_special": tok.decode(special.ids, skip_special_tokens=True)}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
print(f"tokenizers {tokenizers.__version__}: {len(cases)} cases x {len(texts)} strings")
