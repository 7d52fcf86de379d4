// The subcommands of the flow2 program; each file registers one on the CLI11 application.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace flow2::cli {

void add_info_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_perplexity_command(CLI::App& app);
void add_version_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_chat_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_dataset_command(CLI::App& app);
void add_finetune_command(CLI::App& app);
void add_fuse_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_report_command(CLI::App& app);

// Parses "1,2,3" into token ids; `option` names the flag in errors.
std::vector<int32_t> parse_id_list(const std::string& text, const std::string& option);

}  // namespace flow2::cli
