// Status propagation macros. Debian 12's Abseil (20220623) has Status and
// StatusOr but no RETURN_IF_ERROR, so the suite defines its two once here.
#ifndef SSIHV_BASE_STATUS_MACROS_H_
#define SSIHV_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SSIHV_STATUS_CONCAT_INNER_(a, b) a##b
#define SSIHV_STATUS_CONCAT_(a, b) SSIHV_STATUS_CONCAT_INNER_(a, b)

/// Evaluates `expr` (an absl::Status) and returns it from the enclosing
/// function if it is not OK.
#define SSIHV_RETURN_IF_ERROR(expr)                           \
  do {                                                        \
    ::absl::Status ssihv_status_ = (expr);                    \
    if (!ssihv_status_.ok()) return ssihv_status_;            \
  } while (false)

/// `SSIHV_ASSIGN_OR_RETURN(auto x, MakeX());` evaluates the StatusOr, returns
/// its status on error, and otherwise moves the value into `lhs`.
#define SSIHV_ASSIGN_OR_RETURN(lhs, expr)                                  \
  SSIHV_ASSIGN_OR_RETURN_IMPL_(                                            \
      SSIHV_STATUS_CONCAT_(ssihv_statusor_, __LINE__), lhs, expr)

#define SSIHV_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // SSIHV_BASE_STATUS_MACROS_H_
