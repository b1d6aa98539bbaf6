#include "ssihv/testing/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace ssihv::testing {
absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    const std::vector<std::string>& argv, const std::vector<std::string>& env,
    const std::string& input) {
  if (argv.empty()) return absl::InvalidArgumentError("Subprocess: empty argv");
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 ||
      ::pipe2(err, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  std::vector<std::string> args = argv;
  std::vector<char*> c_argv;
  for (std::string& a : args) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) envs.emplace_back(*e);
  envs.insert(envs.end(), env.begin(), env.end());
  std::vector<char*> c_env;
  for (std::string& e : envs) c_env.push_back(e.data());
  c_env.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0)
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::execve(c_argv[0], c_argv.data(), c_env.data());
    ::dprintf(2, "exec %s: %s\n", c_argv[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (!input.empty()) (void)!::write(in[1], input.data(), input.size());
  ::close(in[1]);
  std::unique_ptr<Subprocess> p(new Subprocess());
  p->pid_ = pid;
  p->reader_ = std::thread(
      [raw = p.get(), o = out[0], e = err[0]] { raw->ReadLoop(o, e); });
  return p;
}

void Subprocess::ReadLoop(int out_fd, int err_fd) {
  int fds[2] = {out_fd, err_fd};
  bool open[2] = {true, true};
  while (open[0] || open[1]) {
    pollfd p[2] = {{open[0] ? fds[0] : -1, POLLIN, 0},
                   {open[1] ? fds[1] : -1, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno == EINTR) continue;
    for (int i = 0; i < 2; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i], buf, sizeof(buf));
      if (n <= 0) {
        open[i] = false;
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      (i == 0 ? out_ : err_).append(buf, static_cast<size_t>(n));
      cv_.notify_all();
    }
  }
  ::close(out_fd);
  ::close(err_fd);
  std::lock_guard<std::mutex> lock(mu_);
  output_closed_ = true;
  cv_.notify_all();
}

Subprocess::~Subprocess() {
  if (!status_) {
    ::kill(pid_, SIGKILL);
    Wait(std::chrono::seconds(30));
  }
  if (reader_.joinable()) reader_.join();
}

void Subprocess::Signal(int sig) const {
  if (!status_) ::kill(pid_, sig);
}

std::optional<int> Subprocess::Wait(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd >= 0) {
    pollfd p = {pidfd, POLLIN, 0};
    int r;
    do {
      r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (r < 0 && errno == EINTR);
    ::close(pidfd);
    if (r == 0) return std::nullopt;
  }
  int st = 0;
  if (::waitpid(pid_, &st, 0) != pid_) return std::nullopt;
  status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (reader_.joinable()) reader_.join();
  return status_;
}

bool Subprocess::WaitForOutput(const std::string& text,
                               std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout,
                      [&] {
                        return out_.find(text) != std::string::npos ||
                               err_.find(text) != std::string::npos ||
                               output_closed_;
                      }) &&
         (out_.find(text) != std::string::npos ||
          err_.find(text) != std::string::npos);
}

std::string Subprocess::out() const {
  std::lock_guard<std::mutex> lock(mu_);
  return out_;
}

std::string Subprocess::err() const {
  std::lock_guard<std::mutex> lock(mu_);
  return err_;
}

}  // namespace ssihv::testing
