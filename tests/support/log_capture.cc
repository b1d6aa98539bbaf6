#include "ssihv/testing/log_capture.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "ssihv/base/log.h"

namespace ssihv::testing {

LogCapture::LogCapture() {
  base::SetLogSink([this](base::LogLevel, absl::string_view line) {
    std::lock_guard<std::mutex> lock(mu_);
    lines_.emplace_back(line);
  });
}

LogCapture::~LogCapture() { base::SetLogSink(nullptr); }

bool LogCapture::Contains(const std::string& needle) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& l : lines_) {
    if (l.find(needle) != std::string::npos) return true;
  }
  return false;
}

std::string LogCapture::All() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& l : lines_) absl::StrAppend(&out, l, "\n");
  return out;
}

}  // namespace ssihv::testing
