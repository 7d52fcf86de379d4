// Building sections, and the Markdown rendering (charts appear as their data in tables; the
// HTML file draws them).
#include <fmt/format.h>

#include "report/document.h"

namespace flow2::report {

void Section::paragraph(std::string text) {
  Block block;
  block.text = std::move(text);
  blocks.push_back(std::move(block));
}

void Section::list(std::vector<std::string> items) {
  Block block;
  block.kind = Block::Kind::List;
  block.items = std::move(items);
  blocks.push_back(std::move(block));
}

void Section::table(Table table) {
  Block block;
  block.kind = Block::Kind::Table;
  block.table = std::move(table);
  blocks.push_back(std::move(block));
}

void Section::chart(BarChart chart) {
  Block block;
  block.kind = Block::Kind::BarChart;
  block.bars = std::move(chart);
  blocks.push_back(std::move(block));
}

void Section::chart(LineChart chart) {
  Block block;
  block.kind = Block::Kind::LineChart;
  block.line = std::move(chart);
  blocks.push_back(std::move(block));
}

namespace {

// Table cells may not hold a bare '|' or a line break.
std::string cell(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n')
      out += ' ';
    else
      out += c;
  }
  return out;
}

void markdown_table(std::string& out, const Table& table) {
  out += "|";
  for (const auto& h : table.header) out.append(" ").append(cell(h)).append(" |");
  out += "\n|";
  for (size_t i = 0; i < table.header.size(); ++i) out += " --- |";
  out += "\n";
  for (const auto& row : table.rows) {
    out += "|";
    for (const auto& c : row) out.append(" ").append(cell(c)).append(" |");
    out += "\n";
  }
  out += "\n";
}

}  // namespace

std::string render_markdown(const Document& document) {
  std::string out = "# " + document.title + "\n\n";
  for (const auto& line : document.preamble) out += line + "\n";
  out += "\n";
  for (const auto& section : document.sections) {
    out += "## " + section.title + "\n\n";
    for (const auto& block : section.blocks) {
      switch (block.kind) {
        case Block::Kind::Paragraph:
          out += block.text + "\n\n";
          break;
        case Block::Kind::List:
          for (const auto& item : block.items) out += "- " + item + "\n";
          out += "\n";
          break;
        case Block::Kind::Table:
          markdown_table(out, block.table);
          break;
        case Block::Kind::BarChart: {
          Table table{{block.bars.title, block.bars.unit}, {}};
          for (const auto& bar : block.bars.bars) table.rows.push_back({bar.label, bar.text});
          out += "Chart (drawn in report.html):\n\n";
          markdown_table(out, table);
          break;
        }
        case Block::Kind::LineChart:
          out += fmt::format("Chart (drawn in report.html): {}, {} points.\n\n", block.line.title,
                             block.line.points.size());
          break;
      }
    }
  }
  return out;
}

}  // namespace flow2::report
