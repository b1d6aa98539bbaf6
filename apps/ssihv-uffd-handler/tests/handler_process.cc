#include "handler_process.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "ssihv/base/errno_status.h"

namespace ssihv::fc_client {

absl::StatusOr<std::unique_ptr<HandlerProcess>> HandlerProcess::Start(
    const std::string& binary, const std::vector<std::string>& args, int cpu) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) < 0) return base::LastErrnoStatus("pipe2");
  std::vector<std::string> argv_s = {binary};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return base::LastErrnoStatus("fork");
  if (pid == 0) {
    ::dup2(pipe_fds[1], 1);
    ::dup2(pipe_fds[1], 2);
    if (cpu >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      ::sched_setaffinity(0, sizeof(set), &set);
    }
    ::execv(binary.c_str(), argv.data());
    ::perror("execv");
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  std::unique_ptr<HandlerProcess> p(new HandlerProcess());
  p->pid_ = pid;
  const int read_fd = pipe_fds[0];
  p->reader_ = std::thread([raw = p.get(), read_fd] { raw->ReadLog(read_fd); });
  return p;
}

HandlerProcess::~HandlerProcess() {
  if (Running()) Signal(SIGKILL);
  if (reader_.joinable()) reader_.join();
}

void HandlerProcess::ReadLog(int fd) {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard<std::mutex> lock(mu_);
    if (n <= 0) {
      eof_ = true;
      cv_.notify_all();
      break;
    }
    log_.append(buf, static_cast<size_t>(n));
    cv_.notify_all();
  }
  ::close(fd);
}

int64_t HandlerProcess::WaitForLog(const std::string& text, int64_t from,
                                   double timeout_s) {
  std::unique_lock<std::mutex> lock(mu_);
  size_t at = std::string::npos;
  cv_.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] {
    at = log_.find(text, static_cast<size_t>(from));
    return at != std::string::npos || eof_;
  });
  if (at == std::string::npos) return -1;
  return static_cast<int64_t>(at + text.size());
}

std::string HandlerProcess::Log() const {
  std::lock_guard<std::mutex> lock(mu_);
  return log_;
}

int HandlerProcess::Signal(int sig, double timeout_s) {
  if (Running()) ::kill(pid_, sig);
  return Wait(timeout_s);
}

int HandlerProcess::Wait(double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration<double>(timeout_s);
  while (Running()) {
    if (std::chrono::steady_clock::now() > deadline) return -1;
    // The child's exit closes the log pipe: wait for that, not a delay.
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_until(lock, deadline, [&] { return eof_; });
    lock.unlock();
    if (Running() && eof_) ::sched_yield();
  }
  return exit_status_;
}

bool HandlerProcess::Running() {
  if (exit_status_ >= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) != pid_) return true;
  exit_status_ =
      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return false;
}

}  // namespace ssihv::fc_client
