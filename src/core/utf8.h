// UTF-8 helpers shared by the tokenizer and the chat templates: code point iteration, encoding,
// validation and repair, Unicode classes, and the GPT-2 byte map that byte-level BPE uses.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flow2::utf8 {

// Length in bytes of the UTF-8 sequence starting with `lead` (1 for invalid lead bytes).
size_t sequence_length(unsigned char lead);
// Decodes the code point at `text[position]`; invalid bytes decode as U+FFFD of length 1.
char32_t decode(std::string_view text, size_t position, size_t* length);
void append(std::string& out, char32_t code_point);
std::vector<std::string_view> characters(std::string_view text);
// `prefix` followed by `text` (GCC 12 warns falsely about std::string::insert at 0).
std::string prepend(std::string_view prefix, std::string_view text);
// True when `text` is well-formed UTF-8.
bool is_valid(std::string_view text);
// Replaces ill-formed sequences by U+FFFD, as Rust's String::from_utf8_lossy does.
std::string make_valid(std::string_view bytes);
// How many bytes at the end of `text` are an incomplete (but so far valid) UTF-8 sequence.
size_t incomplete_suffix(std::string_view text);

bool is_whitespace(char32_t c);  // Unicode White_Space, as Rust's char::is_whitespace
bool is_alphanumeric(char32_t c);
bool is_punctuation(char32_t c);  // Unicode P* categories and ASCII punctuation
bool is_numeric(char32_t c);      // Unicode N* categories

// GPT-2's reversible byte <-> printable character mapping.
const std::array<std::string, 256>& byte_to_unicode();
// The byte for a mapped character, or -1.
int unicode_to_byte(char32_t c);

}  // namespace flow2::utf8
