#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "bench_common.h"

namespace ssihv::bench {

ServerProcess::~ServerProcess() { Stop(); }

bool ServerProcess::Start(std::function<int(int, int)> serve) {
  int ready[2], stop[2];
  if (pipe(ready) != 0 || pipe(stop) != 0) return false;
  std::fflush(nullptr);
  pid_ = fork();
  if (pid_ < 0) return false;
  if (pid_ == 0) {
    close(ready[0]);
    close(stop[1]);
    _exit(serve(ready[1], stop[0]));
  }
  close(ready[1]);
  close(stop[0]);
  stop_fd_ = stop[1];
  char byte;
  bool ok = read(ready[0], &byte, 1) == 1;
  close(ready[0]);
  if (!ok) Stop();
  return ok;
}

void ServerProcess::Stop() {
  if (pid_ <= 0) return;
  close(stop_fd_);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  stop_fd_ = -1;
}

}  // namespace ssihv::bench
