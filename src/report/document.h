// The report as a document of sections, paragraphs, lists, tables and charts: built once from
// results.json, then rendered as Markdown and as HTML, so both say the same numbers.
#pragma once

#include <string>
#include <vector>

namespace flow2::report {

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

struct Bar {
  std::string label;
  double value = 0;
  double error = 0;  // drawn as a whisker (one standard deviation); 0: none
  std::string text;  // the value as printed beside the bar
};

struct BarChart {
  std::string title;
  std::string unit;
  std::vector<Bar> bars;
};

struct LineChart {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<std::pair<double, double>> points;
};

struct Block {
  enum class Kind { Paragraph, List, Table, BarChart, LineChart };
  Kind kind = Kind::Paragraph;
  std::string text;                // Paragraph
  std::vector<std::string> items;  // List
  Table table;
  BarChart bars;
  LineChart line;
};

struct Section {
  std::string id;  // HTML anchor
  std::string title;
  std::vector<Block> blocks;

  void paragraph(std::string text);
  void list(std::vector<std::string> items);
  void table(Table table);
  void chart(BarChart chart);
  void chart(LineChart chart);
};

struct Document {
  std::string title;
  std::vector<std::string> preamble;  // lines under the title
  std::vector<Section> sections;
};

std::string render_markdown(const Document& document);
std::string render_html(const Document& document);
// Inline SVG (no scripts, no external references); all text escaped.
std::string svg_bar_chart(const BarChart& chart);
std::string svg_line_chart(const LineChart& chart);
std::string escape_html(const std::string& text);

}  // namespace flow2::report
