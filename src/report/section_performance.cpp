// The performance comparison table with its charts, and one analysis per model.
#include <fmt/format.h>

#include "report/format.h"
#include "report/rows.h"
#include "report/sections.h"

namespace flow2::report {
namespace {

std::string or_na(double value, const std::function<std::string(double)>& print) {
  return known(value) ? print(value) : "n/a";
}

std::string with_sd(double mean, double sd, int digits) {
  if (!known(mean)) return "n/a";
  return fixed(mean, digits) + (known(sd) ? " ± " + fixed(sd, digits) : "");
}

BarChart chart(const std::string& title, const std::string& unit, const std::vector<PerfRow>& rows,
               double PerfRow::*mean, double PerfRow::*sd, int digits, double scale = 1.0) {
  BarChart out{title, unit, {}};
  for (const auto& row : rows) {
    if (!known(row.*mean)) continue;
    const double error = sd && known(row.*sd) ? row.*sd / scale : 0.0;
    out.bars.push_back({row.label(), row.*mean / scale, error, fixed(row.*mean / scale, digits)});
  }
  return out;
}

}  // namespace

Section performance_section(const Json& results) {
  Section section{"performance", "Performance comparison", {}};
  const Json& bench = field(results, "benchmark");
  const int64_t pp = bench.is_object() ? bench.value("prompt_tokens", 0) : 0;
  const int64_t tg = bench.is_object() ? bench.value("gen_tokens", 0) : 0;
  const std::string pp_name = fmt::format("pp{} tok/s", pp),
                    tg_name = fmt::format("tg{} tok/s", tg);
  std::vector<PerfRow> rows = performance_rows(results);
  if (rows.empty()) {
    section.paragraph("No model was measured: " +
                      status_text(field(field(results, "stages"), "benchmark")) + ".");
    return section;
  }
  section.paragraph(fmt::format(
      "Each speed is the mean ± sample standard deviation over {} repetitions. {} is the prompt "
      "speed (one prefill of {} random token ids from the vocabulary); {} the generation speed "
      "({} single-token steps, batch 1); time to first token is the prefill plus choosing the "
      "first token. Load time is opening the checkpoint and binding its weights; cold is the "
      "first load in the process after evicting the files from the page cache. Peers run the "
      "same sizes and threads and are labelled by their framework in the Source column; n/a "
      "marks what a peer does not report (llama-bench reports only pp and tg).",
      bench.is_object() ? bench.value("reps", 0) : 0, pp_name, pp, tg_name, tg));
  Table table{{"Model", "Source", "Backend", "Size", "Params", "Quantization", "Cold load s",
               "Warm load s", "Peak RSS", "TTFT s", pp_name, tg_name},
              {}};
  for (const auto& row : rows) {
    std::vector<std::string> cells = {
        row.model,
        row.source,
        row.device.empty() ? "n/a" : row.device,
        or_na(row.bytes_on_disk, megabytes),
        or_na(row.parameters, millions),
        row.dtype.empty() ? "n/a"
                          : row.dtype + (known(row.bits_per_weight) && !row.peer
                                             ? " (" + fixed(row.bits_per_weight, 2) + " bpw)"
                                             : "")};
    if (!row.measured) {
      cells.push_back((row.failed ? "failed: " : "not measured: ") + row.reason);
      cells.resize(table.header.size(), "");
    } else {
      cells.push_back(or_na(row.cold_load_s, [](double v) { return fixed(v, 3); }));
      cells.push_back(with_sd(row.warm_load_s, row.warm_load_sd, 3));
      cells.push_back(or_na(row.peak_rss, megabytes));
      cells.push_back(with_sd(row.ttft, row.ttft_sd, 3));
      cells.push_back(with_sd(row.pp, row.pp_sd, 1));
      cells.push_back(with_sd(row.tg, row.tg_sd, 1));
    }
    table.rows.push_back(cells);
  }
  section.table(table);
  std::vector<PerfRow> measured = measured_rows(results, false);
  if (measured.empty()) return section;
  section.chart(chart("Generation speed (" + tg_name + ")", "tok/s", measured, &PerfRow::tg,
                      &PerfRow::tg_sd, 1));
  section.chart(
      chart("Prompt speed (" + pp_name + ")", "tok/s", measured, &PerfRow::pp, &PerfRow::pp_sd, 1));
  section.chart(
      chart("Warm load time", "s", measured, &PerfRow::warm_load_s, &PerfRow::warm_load_sd, 3));
  section.chart(chart("Peak resident memory", "MB", measured, &PerfRow::peak_rss, nullptr, 1, 1e6));
  return section;
}

std::vector<Section> model_sections(const Json& results) {
  std::vector<Section> sections;
  const Json& bench = field(results, "benchmark");
  for (const auto& entry : field(bench, "models")) {
    const Json& m = entry["model"];
    const std::string name = m.value("name", "");
    Section section{"model-" + std::to_string(sections.size() + 1), "Model: " + name, {}};
    std::vector<std::string> by_dtype;
    for (const auto& [dtype, count] : m["parameters_by_dtype"].items()) {
      by_dtype.push_back(dtype + " " + millions(count.get<double>()));
    }
    section.paragraph(fmt::format(
        "{} ({}): {} layers, hidden size {}, vocabulary {}; {} parameters ({}), {} on disk, "
        "{} of tensor data, {} bits per weight on average.",
        name, m.value("architecture", ""), m.value("layers", 0), m.value("hidden_size", 0),
        m.value("vocab_size", 0), millions(m.value("parameters", 0.0)), fmt::join(by_dtype, ", "),
        megabytes(m.value("bytes_on_disk", 0.0)), megabytes(m.value("weight_bytes", 0.0)),
        fixed(m.value("bits_per_weight", 0.0), 2)));
    for (const auto& b : entry["backends"]) {
      const std::string backend = b.value("backend", "");
      if (!b.value("measured", false)) {
        section.paragraph(backend + ": not measured: " + b.value("not_measured", "") + ".");
        continue;
      }
      const Json& cache = b["page_cache_drop"];
      std::string cold =
          fmt::format("{}: cold load {} s, warm load {} s.", backend,
                      fixed(b.value("cold_load_s", 0.0), 3), mean_sd(b["warm_load_s"], 3));
      if (cache.value("dropped", false)) {
        cold += fmt::format(
            " Before the cold load posix_fadvise(DONTNEED) evicted the files "
            "({} were cached, {} after), so it read them from disk.",
            megabytes(cache.value("resident_before_bytes", 0.0)),
            megabytes(cache.value("resident_after_bytes", 0.0)));
      } else {
        cold += fmt::format(
            " Evicting the files from the page cache did not work ({} still "
            "cached{}), so the cold figure is a cached load.",
            megabytes(cache.value("resident_after_bytes", 0.0)),
            cache.contains("error") ? ": " + cache.value("error", "") : "");
      }
      if (!b.value("cold_is_first_load", true))
        cold += " The model had been loaded before in this process.";
      section.paragraph(cold);
      const double weights = m.value("weight_bytes", 0.0);
      const double peak = b.value("peak_rss_bytes", 0.0);
      section.paragraph(fmt::format(
          "Resident memory: {} after loading, {} at the peak ({}x the {} of weights){}.",
          megabytes(b.value("rss_after_load_bytes", 0.0)), megabytes(peak),
          fixed(weights > 0 ? peak / weights : 0.0, 2), megabytes(weights),
          b.value("peak_rss_reset", false) ? ""
                                           : "; the peak could not be reset before this model, "
                                             "so it is the process's peak so far"));
      const double tg = b["gen_tok_s"].value("mean", 0.0),
                   pp = b["prompt_tok_s"].value("mean", 0.0);
      std::string speed = fmt::format(
          "Speed: prompt {} tok/s, generation {} tok/s, time to first token {} s.",
          mean_sd(b["prompt_tok_s"], 1), mean_sd(b["gen_tok_s"], 1), mean_sd(b["ttft_s"], 3));
      if (tg > 0) {
        speed += fmt::format(
            " A prompt token costs {}x less time than a generated one (batching amortizes the "
            "weight reads). Each generated token reads every weight once: {} x {} tok/s = {} GB/s "
            "of effective memory bandwidth.",
            fixed(pp / tg, 2), megabytes(weights), fixed(tg, 1), fixed(weights * tg / 1e9, 2));
      }
      section.paragraph(speed);
    }
    sections.push_back(section);
  }
  return sections;
}

}  // namespace flow2::report
