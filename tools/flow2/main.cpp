// flow2: one program for the local-LLM workflow. Each subcommand lives in its own file.
#include <omp.h>

#include <cstdio>

#include "commands.h"
#include "flow2/error.h"

extern "C" void openblas_set_num_threads(int);

int main(int argc, char** argv) {
  CLI::App app{"flow2: load, run, fine-tune and measure local language models"};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "CPU threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  flow2::cli::add_info_command(app);
  flow2::cli::add_generate_command(app);
  flow2::cli::add_perplexity_command(app);
  flow2::cli::add_tokenize_command(app);
  flow2::cli::add_chat_command(app);
  flow2::cli::add_convert_command(app);
  flow2::cli::add_dataset_command(app);
  flow2::cli::add_finetune_command(app);
  flow2::cli::add_fuse_command(app);
  flow2::cli::add_eval_command(app);
  flow2::cli::add_bench_command(app);
  flow2::cli::add_report_command(app);
  flow2::cli::add_version_command(app);
  app.parse_complete_callback([&] {
    if (threads > 0) {
      omp_set_num_threads(threads);
      openblas_set_num_threads(threads);
    }
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    int status = app.exit(error);
    return status == 0 ? 0 : 2;
  } catch (const flow2::Error& error) {
    std::fprintf(stderr, "flow2: error: %s\n", error.what());
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "flow2: error: %s\n", error.what());
    return 1;
  }
  return 0;
}
