// Parsing and naming of the score selection and strand options (see score_options.h).
#include "pipelines/score_options.h"

#include <sstream>
#include <stdexcept>

namespace gm {

std::string ScoreSelection::to_string() const {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ',';
    s += name;
  };
  add(llr, "llr");
  add(dll, "dll");
  add(emb, "emb");
  return s;
}

ScoreSelection parse_score_selection(const std::string& text) {
  ScoreSelection s;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    if (item == "llr") s.llr = true;
    else if (item == "dll") s.dll = true;
    else if (item == "emb") s.emb = true;
    else if (item == "all") s.llr = s.dll = s.emb = true;
    else throw std::invalid_argument("--scores: unknown score '" + item + "' (llr, dll, emb)");
  }
  if (!s.any()) throw std::invalid_argument("--scores: give at least one of llr, dll, emb");
  return s;
}

ScoreStrands parse_score_strands(const std::string& text) {
  if (text == "forward" || text == "+") return ScoreStrands::Forward;
  if (text == "reverse" || text == "-") return ScoreStrands::Reverse;
  if (text == "both") return ScoreStrands::Both;
  throw std::invalid_argument("--strand must be forward, reverse or both, not '" + text + "'");
}

const char* score_strands_name(ScoreStrands m) {
  switch (m) {
    case ScoreStrands::Forward: return "forward";
    case ScoreStrands::Reverse: return "reverse";
    default: return "both";
  }
}

}  // namespace gm
