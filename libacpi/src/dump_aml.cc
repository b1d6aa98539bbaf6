// ASL-like rendering of the AML subset ssihv emits (see aml.h for the
// grammar rules). Every read is bounds-checked: malformed AML ends the
// decode with a note and a hex dump of the rest, never a crash.
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "aml.h"
#include "ssihv/acpi/dump.h"

namespace ssihv::acpi {
namespace {

class AmlReader {
 public:
  explicit AmlReader(absl::Span<const uint8_t> aml) : aml_(aml) {}

  std::string Run() {
    TermList(aml_.size(), 0);
    return std::move(out_);
  }

 private:
  bool Ok(size_t n) const {
    return !failed_ && pos_ <= end_ && n <= end_ - pos_;
  }
  void Fail(absl::string_view why) {
    if (failed_) return;
    failed_ = true;
    absl::StrAppendFormat(&out_, "/* %s at AML offset 0x%x; rest: */\n", why,
                          pos_);
    for (size_t i = pos_; i < aml_.size(); ++i) {
      absl::StrAppendFormat(&out_, "%02X%s", aml_[i],
                            (i - pos_) % 16 == 15 ? "\n" : " ");
    }
    out_ += "\n";
  }
  void Indent(int depth) { out_.append(4 * depth, ' '); }

  // PkgLength (§20.2.4): returns the end offset of the package.
  std::optional<size_t> PkgEnd() {
    const size_t start = pos_;
    if (!Ok(1)) return std::nullopt;
    const uint8_t lead = aml_[pos_++];
    const int extra = lead >> 6;
    size_t len = extra == 0 ? (lead & 0x3F) : (lead & 0x0F);
    if (!Ok(extra)) return std::nullopt;
    for (int i = 0; i < extra; ++i) {
      len |= size_t{aml_[pos_++]} << (4 + 8 * i);
    }
    if (len < pos_ - start || start + len > end_) return std::nullopt;
    return start + len;
  }

  std::optional<std::string> NameString() {
    std::string name;
    if (Ok(1) && aml_[pos_] == aml::kRootChar) {
      name = "\\";
      ++pos_;
    }
    int segs = 1;
    if (Ok(1) && aml_[pos_] == aml::kDualNamePrefix) {
      segs = 2;
      ++pos_;
    }
    for (int i = 0; i < segs; ++i) {
      if (!Ok(4)) return std::nullopt;
      std::string seg(reinterpret_cast<const char*>(&aml_[pos_]), 4);
      pos_ += 4;
      // ASL drops the trailing '_' padding of a NameSeg.
      while (seg.size() > 1 && seg.back() == '_') seg.pop_back();
      absl::StrAppend(&name, i ? "." : "", seg);
    }
    return name;
  }

  std::optional<uint64_t> Integer() {
    if (!Ok(1)) return std::nullopt;
    const uint8_t op = aml_[pos_];
    int width = op == aml::kBytePrefix    ? 1
                : op == aml::kWordPrefix  ? 2
                : op == aml::kDWordPrefix ? 4
                : op == aml::kQWordPrefix ? 8
                                          : 0;
    if (op == aml::kZeroOp || op == aml::kOneOp || op == aml::kOnesOp) {
      ++pos_;
      return op == aml::kOnesOp ? UINT64_MAX : op;
    }
    if (width == 0 || !Ok(1 + width)) return std::nullopt;
    ++pos_;
    uint64_t v = 0;
    for (int i = width - 1; i >= 0; --i) v = (v << 8) | aml_[pos_ + i];
    pos_ += width;
    return v;
  }

  static std::string EisaIdText(uint32_t raw) {
    const uint32_t v = (raw >> 24) | ((raw >> 8) & 0xFF00) |
                       ((raw << 8) & 0xFF0000) | (raw << 24);
    return absl::StrFormat("EisaId (\"%c%c%c%04X\")", '@' + ((v >> 26) & 0x1F),
                           '@' + ((v >> 21) & 0x1F), '@' + ((v >> 16) & 0x1F),
                           v & 0xFFFF);
  }

  // DataRefObject: integer, string, Package or Buffer.
  std::optional<std::string> Data(int depth, bool eisa_id) {
    if (!Ok(1)) return std::nullopt;
    const uint8_t op = aml_[pos_];
    if (op == aml::kStringPrefix) {
      std::string s = "\"";
      for (++pos_; Ok(1) && aml_[pos_] != 0; ++pos_) s += aml_[pos_];
      if (!Ok(1)) return std::nullopt;
      ++pos_;
      return s + "\"";
    }
    if (op == aml::kPackageOp || op == aml::kBufferOp) {
      ++pos_;
      auto end = PkgEnd();
      if (!end) return std::nullopt;
      return op == aml::kPackageOp ? Package(*end, depth) : Buffer(*end);
    }
    auto v = Integer();
    if (!v) return std::nullopt;
    if (*v == 0) return std::string("Zero");
    if (*v == 1) return std::string("One");
    if (*v == UINT64_MAX) return std::string("Ones");
    if (eisa_id && *v <= UINT32_MAX) {
      return EisaIdText(static_cast<uint32_t>(*v));
    }
    return absl::StrFormat("0x%X", *v);
  }

  std::optional<std::string> Package(size_t end, int depth) {
    if (!Ok(1)) return std::nullopt;
    const size_t count = aml_[pos_++];
    const size_t saved_end = end_;
    end_ = end;
    std::string s = absl::StrFormat("Package (0x%02X) { ", count);
    for (size_t i = 0; i < count && pos_ < end_; ++i) {
      auto e = Data(depth, false);
      if (!e) return std::nullopt;
      absl::StrAppend(&s, i ? ", " : "", *e);
    }
    end_ = saved_end;
    if (pos_ != end) return std::nullopt;
    return s + " }";
  }

  std::optional<std::string> Buffer(size_t end) {
    const size_t saved_end = end_;
    end_ = end;
    auto size = Integer();
    end_ = saved_end;
    if (!size || pos_ > end) return std::nullopt;
    std::string s = absl::StrFormat("Buffer (0x%02X) {", *size);
    for (size_t i = pos_; i < end; ++i) {
      absl::StrAppendFormat(&s, "%s0x%02X", i == pos_ ? " " : ", ", aml_[i]);
    }
    pos_ = end;
    return s + " }";
  }

  void TermList(size_t end, int depth) {
    const size_t saved_end = end_;
    end_ = end;
    while (!failed_ && pos_ < end_) {
      const uint8_t op = aml_[pos_];
      if (op == aml::kNameOp) {
        ++pos_;
        auto name = NameString();
        if (!name) return Fail("bad NameString");
        bool hid = *name == "_HID" || name->ends_with("._HID");
        auto data = Data(depth, hid);
        if (!data) return Fail("bad Name data");
        Indent(depth);
        absl::StrAppend(&out_, "Name (", *name, ", ", *data, ")\n");
      } else if (op == aml::kScopeOp || (op == aml::kExtOpPrefix && Ok(2) &&
                                         aml_[pos_ + 1] == aml::kDeviceOp)) {
        const char* keyword = op == aml::kScopeOp ? "Scope" : "Device";
        pos_ += op == aml::kScopeOp ? 1 : 2;
        auto pkg_end = PkgEnd();
        if (!pkg_end) return Fail("bad PkgLength");
        auto name = NameString();
        if (!name || pos_ > *pkg_end) return Fail("bad NameString");
        Indent(depth);
        absl::StrAppend(&out_, keyword, " (", *name, ")\n");
        Indent(depth);
        out_ += "{\n";
        TermList(*pkg_end, depth + 1);
        if (failed_) return;
        Indent(depth);
        out_ += "}\n";
      } else {
        return Fail(absl::StrFormat("unsupported AML opcode 0x%02X", op));
      }
    }
    end_ = saved_end;
  }

  absl::Span<const uint8_t> aml_;
  size_t pos_ = 0;
  size_t end_ = 0;
  bool failed_ = false;
  std::string out_;
};

}  // namespace

std::string DumpAml(absl::Span<const uint8_t> aml) {
  return AmlReader(aml).Run();
}

}  // namespace ssihv::acpi
