// Minimal leveled logging for libraries. Debian 12's Abseil has no absl/log;
// libraries report through this sink and applications decide where it goes
// (stderr by default). Not for the data path: format only on rare events.
#ifndef SSIHV_BASE_LOG_H_
#define SSIHV_BASE_LOG_H_

#include <functional>
#include "absl/strings/string_view.h"

#include "absl/strings/str_cat.h"

namespace ssihv::base {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

using LogSink = std::function<void(LogLevel, absl::string_view)>;

/// Replaces the process-wide sink; nullptr restores the stderr sink.
void SetLogSink(LogSink sink);
/// Messages below `level` are dropped (default kInfo; SSIHV_LOG_LEVEL=debug
/// in the environment lowers it).
void SetMinLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void LogMessage(LogLevel level, absl::string_view message);

/// Logs the StrCat of the arguments, formatting only if `level` is enabled.
template <typename... Args>
void Log(LogLevel level, const Args&... args) {
  if (LogEnabled(level)) LogMessage(level, absl::StrCat(args...));
}

}  // namespace ssihv::base

#endif  // SSIHV_BASE_LOG_H_
