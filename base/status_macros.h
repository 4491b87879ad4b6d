// Small helpers for absl::Status propagation (Debian's Abseil 20220623 has no
// status macros of its own).
#ifndef SNAPSHOT_AGENT_BASE_STATUS_MACROS_H_
#define SNAPSHOT_AGENT_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// SA_RETURN_IF_ERROR(expr): evaluates `expr` (an absl::Status) and returns it
// from the enclosing function when it is not OK.
#define SA_RETURN_IF_ERROR(expr)                        \
  do {                                                     \
    ::absl::Status _status_macro_tmp = (expr);       \
    if (!_status_macro_tmp.ok()) return _status_macro_tmp; \
  } while (0)

#define SA_STATUS_CONCAT_INNER_(a, b) a##b
#define SA_STATUS_CONCAT_(a, b) SA_STATUS_CONCAT_INNER_(a, b)

// SA_ASSIGN_OR_RETURN(lhs, expr): evaluates `expr` (an absl::StatusOr<T>); on
// error returns its status, otherwise moves the value into `lhs`, which may be
// a declaration (`auto x`).
#define SA_ASSIGN_OR_RETURN(lhs, expr) \
  SA_ASSIGN_OR_RETURN_IMPL_(SA_STATUS_CONCAT_(_statusor_, __LINE__), lhs, expr)
#define SA_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

#endif  // SNAPSHOT_AGENT_BASE_STATUS_MACROS_H_
