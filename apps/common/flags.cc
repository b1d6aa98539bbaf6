#include "flags.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace ssihv::apps {

absl::Status ParseFlags(const std::vector<std::string>& args,
                        const std::vector<FlagSpec>& specs) {
  for (size_t i = 0; i < args.size(); ++i) {
    // "--flag=value" carries its value; "-x=y" is not a form.
    const size_t eq =
        args[i].rfind("--", 0) == 0 ? args[i].find('=') : std::string::npos;
    const std::string name = args[i].substr(0, eq);
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs) {
      if (name == s.name || (!s.alias.empty() && name == s.alias)) spec = &s;
    }
    if (spec == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown argument '", args[i], "' (see --help)"));
    }
    std::string value;
    if (!spec->takes_value) {
      if (eq != std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ": takes no value"));
      }
    } else if (eq != std::string::npos) {
      value = args[i].substr(eq + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat(name, ": needs a value"));
    }
    if (spec->takes_value && value.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": empty value"));
    }
    if (absl::Status st = spec->set(value); !st.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(spec->name, ": ", st.message()));
    }
  }
  return absl::OkStatus();
}

std::function<absl::Status(const std::string&)> StringFlag(std::string* out) {
  return [out](const std::string& v) {
    *out = v;
    return absl::OkStatus();
  };
}

std::function<absl::Status(const std::string&)> IntFlag(int* out, int lo,
                                                        int hi) {
  return [out, lo, hi](const std::string& v) {
    int n = 0;
    if (!absl::SimpleAtoi(v, &n) || n < lo || n > hi) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", v, "' is not a number in ", lo, "..", hi));
    }
    *out = n;
    return absl::OkStatus();
  };
}

std::function<absl::Status(const std::string&)> BoolFlag(bool* out) {
  return [out](const std::string&) {
    *out = true;
    return absl::OkStatus();
  };
}

}  // namespace ssihv::apps
