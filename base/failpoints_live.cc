// Linked only into test builds (//base:failpoints_live): failpoints live.
#include "base/failpoint.h"

namespace {
const bool kLive = (snapshot::EnableFailpoints(), true);
}  // namespace
