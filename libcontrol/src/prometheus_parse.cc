// The parser half of prometheus.h: sample lines of the text format 0.0.4.
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ssihv/control/prometheus.h"

namespace ssihv::control {
namespace {

// A cursor over one line; every failure names the line.
class LineParser {
 public:
  LineParser(absl::string_view line, size_t number)
      : s_(line), number_(number) {}

  absl::StatusOr<ParsedSample> Parse() {
    ParsedSample sample;
    sample.name = Name(true);
    if (sample.name.empty()) return Error("expected a metric name");
    if (Peek() == '{') {
      ++pos_;
      absl::Status st = Labels(&sample.labels);
      if (!st.ok()) return st;
    }
    if (SkipSpaces() == 0) return Error("expected a space before the value");
    absl::string_view value = Token();
    absl::StatusOr<double> v = ParseValue(value);
    if (!v.ok()) return v.status();
    sample.value = *v;
    SkipSpaces();
    absl::string_view timestamp = Token();
    int64_t ts;
    if (!timestamp.empty() &&
        std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(),
                        ts)
                .ptr != timestamp.data() + timestamp.size()) {
      return Error(absl::StrCat("bad timestamp \"", timestamp, "\""));
    }
    SkipSpaces();
    if (pos_ != s_.size()) return Error("unexpected text after the sample");
    return sample;
  }

 private:
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  size_t SkipSpaces() {
    size_t start = pos_;
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
    return pos_ - start;
  }
  absl::string_view Token() {
    size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != ' ' && s_[pos_] != '\t') ++pos_;
    return s_.substr(start, pos_ - start);
  }
  std::string Name(bool colon_ok) {
    size_t start = pos_;
    auto ok = [&](char c, bool first) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
             (colon_ok && c == ':') || (!first && c >= '0' && c <= '9');
    };
    while (pos_ < s_.size() && ok(s_[pos_], pos_ == start)) ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", number_, ": ", what));
  }

  absl::Status Labels(std::vector<Label>* labels) {
    for (;;) {
      SkipSpaces();
      if (Peek() == '}') {
        ++pos_;
        return absl::OkStatus();
      }
      Label label;
      label.name = Name(false);
      if (label.name.empty()) return Error("expected a label name or '}'");
      SkipSpaces();
      if (Peek() != '=') return Error("expected '=' after label name");
      ++pos_;
      SkipSpaces();
      if (Peek() != '"') return Error("expected '\"' to open a label value");
      ++pos_;
      absl::Status st = QuotedValue(&label.value);
      if (!st.ok()) return st;
      labels->push_back(std::move(label));
      SkipSpaces();
      if (Peek() == ',') {
        ++pos_;
      } else if (Peek() != '}') {
        return Error("expected ',' or '}' after a label value");
      }
    }
  }

  absl::Status QuotedValue(std::string* out) {
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return absl::OkStatus();
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ == s_.size()) break;
      char e = s_[pos_++];
      if (e == 'n') {
        out->push_back('\n');
      } else if (e == '\\' || e == '"') {
        out->push_back(e);
      } else {
        return Error(absl::StrCat("unknown escape \\", std::string(1, e)));
      }
    }
    return Error("unterminated label value");
  }

  absl::StatusOr<double> ParseValue(absl::string_view v) const {
    if (v == "+Inf" || v == "Inf")
      return std::numeric_limits<double>::infinity();
    if (v == "-Inf") return -std::numeric_limits<double>::infinity();
    if (v == "NaN") return std::numeric_limits<double>::quiet_NaN();
    absl::string_view digits = v;
    if (!digits.empty() && digits[0] == '+') digits.remove_prefix(1);
    double x = 0;
    auto [ptr, ec] =
        std::from_chars(digits.data(), digits.data() + digits.size(), x);
    if (digits.empty() || ec != std::errc() ||
        ptr != digits.data() + digits.size()) {
      return Error(absl::StrCat("bad value \"", v, "\""));
    }
    return x;
  }

  absl::string_view s_;
  size_t number_;
  size_t pos_ = 0;
};

}  // namespace

const std::string* ParsedSample::LabelValue(
    absl::string_view label_name) const {
  for (const control::Label& l : labels) {
    if (l.name == label_name) return &l.value;
  }
  return nullptr;
}

absl::StatusOr<std::vector<ParsedSample>> ParseTextExposition(
    absl::string_view text) {
  std::vector<ParsedSample> samples;
  size_t number = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    absl::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == absl::string_view::npos ? text.size() : nl + 1);
    ++number;
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      line.remove_prefix(1);
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    absl::StatusOr<ParsedSample> sample = LineParser(line, number).Parse();
    if (!sample.ok()) return sample.status();
    samples.push_back(*std::move(sample));
  }
  return samples;
}

std::string MergeExpositions(const std::vector<std::string>& texts) {
  struct Block {
    std::string header;   // "# HELP" and "# TYPE" lines
    std::string samples;  // from every text
  };
  std::vector<std::string> order;
  std::map<std::string, Block> blocks;
  for (const std::string& text : texts) {
    std::string family;  // of the last comment line; samples go there
    std::set<std::string> headed_here;
    absl::string_view rest = text;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      absl::string_view line = rest.substr(0, nl);
      rest.remove_prefix(nl == absl::string_view::npos ? rest.size() : nl + 1);
      if (line.empty()) continue;
      const bool help = absl::StartsWith(line, "# HELP ");
      if (help || absl::StartsWith(line, "# TYPE ")) {
        absl::string_view name = line.substr(7);
        family = std::string(name.substr(0, name.find(' ')));
      }
      auto [it, fresh] = blocks.try_emplace(family);
      if (fresh) order.push_back(family);
      if (line.front() == '#') {
        // A family's header comes from the first text that has it.
        if (fresh || headed_here.count(family) || it->second.header.empty()) {
          headed_here.insert(family);
          absl::StrAppend(&it->second.header, line, "\n");
        }
      } else {
        absl::StrAppend(&it->second.samples, line, "\n");
      }
    }
  }
  std::string out;
  for (const std::string& f : order) {
    absl::StrAppend(&out, blocks[f].header, blocks[f].samples);
  }
  return out;
}

}  // namespace ssihv::control
