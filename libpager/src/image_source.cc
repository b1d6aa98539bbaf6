#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/unique_fd.h"
#include "ssihv/pager/pager.h"

namespace ssihv::pager {
namespace {

bool PageAligned(uint64_t v) { return v % kPageSize == 0; }

absl::StatusOr<base::MappedRegion> MapImage(const std::string& path,
                                            uint64_t* size) {
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return base::LastErrnoStatus(absl::StrCat("open image ", path));
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) {
    return base::LastErrnoStatus(absl::StrCat("fstat image ", path));
  }
  *size = static_cast<uint64_t>(st.st_size);
  if (*size == 0 || !PageAligned(*size)) {
    return absl::InvalidArgumentError(
        absl::StrCat("image ", path, ": size ", *size,
                     " is not a positive multiple of 4096"));
  }
  return base::MappedRegion::Shared(fd.get(), *size, 0, PROT_READ);
}

}  // namespace

absl::StatusOr<std::vector<ImageSource::Extent>> ImageSource::CheckExtents(
    const std::string& what, uint64_t image_size,
    std::vector<ImageExtent> extents) {
  std::sort(
      extents.begin(), extents.end(),
      [](const ImageExtent& a, const ImageExtent& b) { return a.gpa < b.gpa; });
  std::vector<Extent> out;
  for (size_t i = 0; i < extents.size(); ++i) {
    const ImageExtent& e = extents[i];
    const bool in_file =
        e.file_offset <= image_size && e.size <= image_size - e.file_offset;
    if (e.size == 0 || !PageAligned(e.gpa) || !PageAligned(e.file_offset) ||
        !PageAligned(e.size) || !in_file || e.gpa + e.size < e.gpa) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " extent[", i, "] gpa=0x", absl::Hex(e.gpa), " file_offset=0x",
          absl::Hex(e.file_offset), " size=0x", absl::Hex(e.size),
          ": must be 4 KiB aligned, non-empty and inside "
          "the file of 0x",
          absl::Hex(image_size), " bytes"));
    }
    if (i > 0 && extents[i - 1].gpa + extents[i - 1].size > e.gpa) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " extent[", i, "] gpa=0x", absl::Hex(e.gpa),
                       ": overlaps the previous extent"));
    }
    out.push_back(Extent{e, DiscardedPages(e.gpa, e.size)});
  }
  return out;
}

absl::StatusOr<std::unique_ptr<ImageSource>> ImageSource::Open(
    const std::string& path, std::vector<ImageExtent> extents) {
  uint64_t file_size = 0;
  absl::StatusOr<base::MappedRegion> file = MapImage(path, &file_size);
  if (!file.ok()) return file.status();
  absl::StatusOr<std::vector<Extent>> checked =
      CheckExtents(absl::StrCat("image ", path), file_size, std::move(extents));
  if (!checked.ok()) return checked.status();
  const uint8_t* image = file->data();
  return std::unique_ptr<ImageSource>(
      new ImageSource(*std::move(file), image, *std::move(checked)));
}

absl::StatusOr<std::unique_ptr<ImageSource>> ImageSource::FromMemory(
    const uint8_t* image, uint64_t size, uint64_t gpa) {
  if (image == nullptr) {
    return absl::InvalidArgumentError("ImageSource::FromMemory: image is null");
  }
  absl::StatusOr<std::vector<Extent>> checked =
      CheckExtents("ImageSource::FromMemory", size,
                   {{.gpa = gpa, .file_offset = 0, .size = size}});
  if (!checked.ok()) return checked.status();
  return std::unique_ptr<ImageSource>(
      new ImageSource(base::MappedRegion(), image, *std::move(checked)));
}

absl::StatusOr<std::unique_ptr<ImageSource>> ImageSource::OpenFlat(
    const std::string& path, uint64_t gpa) {
  struct stat st {};
  if (::stat(path.c_str(), &st) < 0) {
    return base::LastErrnoStatus(absl::StrCat("stat image ", path));
  }
  return Open(path, {{.gpa = gpa,
                      .file_offset = 0,
                      .size = static_cast<uint64_t>(st.st_size)}});
}

const ImageSource::Extent* ImageSource::ExtentOf(uint64_t gpa) const {
  // Last extent starting at or below gpa (extents are sorted, disjoint).
  auto it = std::upper_bound(
      extents_.begin(), extents_.end(), gpa,
      [](uint64_t g, const Extent& e) { return g < e.range.gpa; });
  if (it == extents_.begin()) return nullptr;
  --it;
  return gpa - it->range.gpa < it->range.size ? &*it : nullptr;
}

void ImageSource::OnFault(const Fault& fault, Resolver& resolver) {
  absl::Status st;
  const Extent* e = ExtentOf(fault.gpa);
  if (fault.access == FaultAccess::kWriteProtect) {
    st = resolver.Unprotect(fault);
  } else if (e == nullptr || e->discarded.Contains(fault.gpa)) {
    st = resolver.ZeroFill(fault);
  } else {
    const uint8_t* bytes =
        image_ + e->range.file_offset + (fault.gpa - e->range.gpa);
    st = resolver.Copy(fault, bytes, false, FaultKind::kLocalCopy);
  }
  if (!st.ok()) resolver.Fail(fault, st);
}

void ImageSource::OnRemove(uint64_t gpa, uint64_t len) {
  for (Extent& e : extents_) e.discarded.Add(gpa, len);
}

}  // namespace ssihv::pager
