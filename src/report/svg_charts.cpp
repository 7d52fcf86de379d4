// Inline SVG charts: horizontal bars (one per configuration, with a one-sd whisker) and a
// line chart with axes. Sizes are in user units; the viewBox lets the page scale them.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "report/document.h"

namespace flow2::report {
namespace {

constexpr const char* kPalette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759",
                                    "#76b7b2", "#edc948", "#b07aa1", "#9c755f"};

std::string label_text(double x, double y, const std::string& text, const char* anchor,
                       const char* extra = "") {
  return fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\" font-size=\"12\"{}>{}</text>", x, y,
      anchor, extra, escape_html(text));
}

// A "nice" axis maximum: 1, 2 or 5 times a power of ten at or above `value`.
double nice_ceiling(double value) {
  if (value <= 0) return 1;
  const double power = std::pow(10.0, std::floor(std::log10(value)));
  for (double step : {1.0, 2.0, 5.0, 10.0}) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

std::string short_number(double value) {
  return std::abs(value) >= 100 ? fmt::format("{:.0f}", value) : fmt::format("{:.3g}", value);
}

}  // namespace

std::string svg_bar_chart(const BarChart& chart) {
  const double width = 760, label_width = 280, value_width = 90, top = 34, row = 26;
  const double bar_width = width - label_width - value_width - 10;
  const double height = top + row * static_cast<double>(chart.bars.size()) + 12;
  double top_value = 0;
  for (const auto& bar : chart.bars) top_value = std::max(top_value, bar.value + bar.error);
  const double scale = bar_width / nice_ceiling(top_value);
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {0:.0f} {1:.0f}\" width=\"{0:.0f}\" "
      "height=\"{1:.0f}\" role=\"img\" aria-label=\"{2}\">",
      width, height, escape_html(chart.title));
  svg += label_text(0, 18, chart.title + " [" + chart.unit + "]", "start", " font-weight=\"bold\"");
  for (size_t i = 0; i < chart.bars.size(); ++i) {
    const Bar& bar = chart.bars[i];
    const double y = top + row * static_cast<double>(i);
    const double length = std::max(0.0, bar.value * scale);
    svg += label_text(label_width - 8, y + 15, bar.label, "end");
    svg += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>",
        label_width, y + 3, length, row - 8, kPalette[i % 8]);
    if (bar.error > 0) {
      const double lo = label_width + std::max(0.0, (bar.value - bar.error) * scale);
      const double hi = label_width + (bar.value + bar.error) * scale;
      svg += fmt::format(
          "<path d=\"M{0:.1f} {2:.1f}H{1:.1f}M{0:.1f} {3:.1f}V{4:.1f}M{1:.1f} "
          "{3:.1f}V{4:.1f}\" stroke=\"#222\" fill=\"none\"/>",
          lo, hi, y + row / 2 - 1, y + 7, y + row - 9);
    }
    svg += label_text(label_width + length + 6 + (bar.error > 0 ? bar.error * scale : 0), y + 15,
                      bar.text, "start");
  }
  svg += fmt::format("<path d=\"M{0:.1f} {1:.1f}V{2:.1f}\" stroke=\"#888\"/>", label_width, top,
                     height - 10);
  return svg + "</svg>";
}

std::string svg_line_chart(const LineChart& chart) {
  const double width = 760, height = 320, left = 70, right = 20, top = 34, bottom = 46;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  double x_min = INFINITY, x_max = -INFINITY, y_min = INFINITY, y_max = -INFINITY;
  for (const auto& [x, y] : chart.points) {
    x_min = std::min(x_min, x), x_max = std::max(x_max, x);
    y_min = std::min(y_min, y), y_max = std::max(y_max, y);
  }
  if (chart.points.empty()) x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  if (x_max == x_min) x_max = x_min + 1;
  if (y_max == y_min) y_max = y_min + 1;
  auto px = [&](double x) { return left + (x - x_min) / (x_max - x_min) * plot_w; };
  auto py = [&](double y) { return top + (y_max - y) / (y_max - y_min) * plot_h; };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {0:.0f} {1:.0f}\" width=\"{0:.0f}\" "
      "height=\"{1:.0f}\" role=\"img\" aria-label=\"{2}\">",
      width, height, escape_html(chart.title));
  svg += label_text(0, 18, chart.title, "start", " font-weight=\"bold\"");
  svg += fmt::format(
      "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
      "fill=\"#fafafa\" stroke=\"#888\"/>",
      left, top, plot_w, plot_h);
  svg += label_text(left - 6, top + 12, short_number(y_max), "end");
  svg += label_text(left - 6, top + plot_h, short_number(y_min), "end");
  svg += label_text(left, top + plot_h + 16, short_number(x_min), "middle");
  svg += label_text(left + plot_w, top + plot_h + 16, short_number(x_max), "middle");
  svg += label_text(left + plot_w / 2, height - 8, chart.x_label, "middle");
  svg += label_text(14, top + plot_h / 2, chart.y_label, "middle",
                    fmt::format(" transform=\"rotate(-90 14 {:.1f})\"", top + plot_h / 2).c_str());
  std::string path;
  for (const auto& [x, y] : chart.points) {
    path += fmt::format("{}{:.1f} {:.1f}", path.empty() ? "M" : "L", px(x), py(y));
  }
  if (!path.empty()) {
    svg += "<path d=\"" + path + "\" stroke=\"" + kPalette[0] +
           "\" stroke-width=\"2\" fill=\"none\"/>";
  }
  for (const auto& [x, y] : chart.points) {
    svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>", px(x), py(y),
                       kPalette[0]);
  }
  return svg + "</svg>";
}

}  // namespace flow2::report
