// The HTML rendering: one self-contained file (inline CSS and SVG, no scripts, no external
// references), every text escaped.
#include "report/document.h"

namespace flow2::report {

std::string escape_html(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

constexpr const char* kStyle =
    R"(body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:0.3em 0.6em;text-align:left}
th{background:#f0f0f0}nav a{margin-right:1em}figure{margin:1em 0}svg{max-width:100%;height:auto}h2{border-bottom:1px solid #ddd;padding-bottom:0.2em})";

void html_table(std::string& out, const Table& table) {
  out += "<table><thead><tr>";
  for (const auto& h : table.header) out += "<th>" + escape_html(h) + "</th>";
  out += "</tr></thead><tbody>\n";
  for (const auto& row : table.rows) {
    out += "<tr>";
    for (const auto& c : row) out += "<td>" + escape_html(c) + "</td>";
    out += "</tr>\n";
  }
  out += "</tbody></table>\n";
}

}  // namespace

std::string render_html(const Document& document) {
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">";
  out += "<title>" + escape_html(document.title) + "</title><style>" + kStyle + "</style></head>\n";
  out += "<body><main id=\"report\"><h1>" + escape_html(document.title) + "</h1>\n";
  for (const auto& line : document.preamble) out += "<p>" + escape_html(line) + "</p>\n";
  out += "<nav>";
  for (const auto& section : document.sections) {
    out += "<a href=\"#" + escape_html(section.id) + "\">" + escape_html(section.title) + "</a>";
  }
  out += "</nav>\n";
  for (const auto& section : document.sections) {
    out += "<section id=\"" + escape_html(section.id) + "\"><h2>" + escape_html(section.title) +
           "</h2>\n";
    for (const auto& block : section.blocks) {
      switch (block.kind) {
        case Block::Kind::Paragraph:
          out += "<p>" + escape_html(block.text) + "</p>\n";
          break;
        case Block::Kind::List:
          out += "<ul>";
          for (const auto& item : block.items) out += "<li>" + escape_html(item) + "</li>";
          out += "</ul>\n";
          break;
        case Block::Kind::Table:
          html_table(out, block.table);
          break;
        case Block::Kind::BarChart:
          out += "<figure>" + svg_bar_chart(block.bars) + "</figure>\n";
          break;
        case Block::Kind::LineChart:
          out += "<figure>" + svg_line_chart(block.line) + "</figure>\n";
          break;
      }
    }
    out += "</section>\n";
  }
  out += "</main></body></html>\n";
  return out;
}

}  // namespace flow2::report
