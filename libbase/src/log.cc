#include "ssihv/base/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace ssihv::base {
namespace {

LogLevel InitialLevel() {
  const char* env = std::getenv("SSIHV_LOG_LEVEL");
  if (env != nullptr && std::strcmp(env, "debug") == 0) return LogLevel::kDebug;
  if (env != nullptr && std::strcmp(env, "warning") == 0) {
    return LogLevel::kWarning;
  }
  if (env != nullptr && std::strcmp(env, "error") == 0) return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<int> min_level{static_cast<int>(InitialLevel())};
std::mutex sink_mu;
LogSink& Sink() {
  static LogSink* sink = new LogSink();
  return *sink;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "D";
    case LogLevel::kInfo:
      return "I";
    case LogLevel::kWarning:
      return "W";
    case LogLevel::kError:
      return "E";
  }
  return "?";
}

}  // namespace

void SetLogSink(LogSink sink) {
  std::lock_guard<std::mutex> lock(sink_mu);
  Sink() = std::move(sink);
}

void SetMinLogLevel(LogLevel level) {
  min_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >= min_level.load(std::memory_order_relaxed);
}

void LogMessage(LogLevel level, absl::string_view message) {
  std::lock_guard<std::mutex> lock(sink_mu);
  if (Sink()) {
    Sink()(level, message);
    return;
  }
  std::fprintf(stderr, "ssihv %s %.*s\n", LevelName(level),
               static_cast<int>(message.size()), message.data());
}

}  // namespace ssihv::base
