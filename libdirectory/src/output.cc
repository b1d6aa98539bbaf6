#include "ssihv/directory/output.h"

#include "absl/strings/str_cat.h"

namespace ssihv::directory {

const char* EffectTypeName(EffectType type) {
  switch (type) {
    case EffectType::kSend:
      return "Send";
    case EffectType::kSendReport:
      return "SendReport";
    case EffectType::kMapLocal:
      return "MapLocal";
    case EffectType::kWait:
      return "Wait";
    case EffectType::kMapReceived:
      return "MapReceived";
    case EffectType::kFetch:
      return "Fetch";
    case EffectType::kMapFetched:
      return "MapFetched";
    case EffectType::kMakeWritable:
      return "MakeWritable";
    case EffectType::kWriteProtect:
      return "WriteProtect";
    case EffectType::kZap:
      return "Zap";
    case EffectType::kPageLost:
      return "PageLost";
    case EffectType::kDefer:
      return "Defer";
    case EffectType::kRetry:
      return "Retry";
  }
  return "?";
}

std::string Effect::ToString() const {
  switch (type) {
    case EffectType::kSend: {
      std::string s = absl::StrCat("Send ", MsgTypeName(msg.type), " p",
                                   msg.page, " to n", node);
      if (msg.node != kNoNode) absl::StrAppend(&s, " node=", msg.node);
      if (msg.flags != 0) absl::StrAppend(&s, " flags=", msg.flags);
      return s;
    }
    case EffectType::kSendReport:
      return absl::StrCat("SendReport #", index, " to n", node);
    case EffectType::kMapLocal:
    case EffectType::kMapReceived:
      return absl::StrCat(EffectTypeName(type), " p", page,
                          writable ? " rw" : " ro", zero ? " zero" : "");
    case EffectType::kFetch:
      return absl::StrCat("Fetch p", page, " from n", node);
    case EffectType::kDefer:
      return absl::StrCat("Defer ", MsgTypeName(msg.type), " p", page,
                          " from n", node);
    default:
      return absl::StrCat(EffectTypeName(type), " p", page);
  }
}

}  // namespace ssihv::directory
