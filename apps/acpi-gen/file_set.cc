#include "file_set.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::acpigen {
namespace {

absl::Status WriteAll(int fd, const std::vector<uint8_t>& data,
                      const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::LastErrnoStatus(absl::StrCat("write ", path));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status WriteTemp(const std::string& path,
                       const std::vector<uint8_t>& data) {
  base::UniqueFd fd(
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd) return base::LastErrnoStatus(absl::StrCat("create ", path));
  absl::Status st = WriteAll(fd.get(), data, path);
  if (st.ok() && ::fsync(fd.get()) != 0) {
    st = base::LastErrnoStatus(absl::StrCat("fsync ", path));
  }
  return st;
}

void RemoveAll(const std::vector<std::string>& paths) {
  for (const std::string& p : paths) ::unlink(p.c_str());
}

}  // namespace

absl::Status WriteFileSet(const std::string& dir,
                          const std::vector<OutputFile>& files) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    return base::LastErrnoStatus(absl::StrCat("output directory ", dir));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("output directory ", dir, ": not a directory"));
  }
  // Phase 1: complete temporaries; any failure leaves nothing behind.
  std::vector<std::string> temps;
  for (const OutputFile& f : files) {
    std::string tmp = absl::StrCat(dir, "/.", f.name, ".tmp.", ::getpid());
    absl::Status s = WriteTemp(tmp, f.contents);
    if (!s.ok()) {
      ::unlink(tmp.c_str());
      RemoveAll(temps);
      return s;
    }
    temps.push_back(std::move(tmp));
  }
  // Phase 2: rename into place; on failure undo what this run put there.
  std::vector<std::string> placed;
  for (size_t i = 0; i < files.size(); ++i) {
    std::string final_path = absl::StrCat(dir, "/", files[i].name);
    if (::rename(temps[i].c_str(), final_path.c_str()) != 0) {
      absl::Status s = base::LastErrnoStatus(
          absl::StrCat("rename ", temps[i], " -> ", final_path));
      RemoveAll(std::vector<std::string>(temps.begin() + i, temps.end()));
      RemoveAll(placed);
      return s;
    }
    placed.push_back(std::move(final_path));
  }
  // Make the new directory entries durable.
  base::UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd) ::fsync(dfd.get());
  return absl::OkStatus();
}

}  // namespace ssihv::acpigen
