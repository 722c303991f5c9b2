#include "tests/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace gan::testing {

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(std::vector<std::string> args,
                                                                  const ChildOptions& options) {
  if (args.empty()) return absl::InvalidArgumentError("no argv");
  if (options.check_executable && ::access(args[0].c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("no executable at ", args[0]));
  }
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  const bool log = !options.log_file.empty();
  const bool err_pipe = !log && options.capture_stderr;
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  if (!log && ::pipe2(out, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
  if (err_pipe && ::pipe2(err, O_CLOEXEC) != 0) {
    const int error = errno;
    ::close(out[0]);
    ::close(out[1]);
    return absl::ErrnoToStatus(error, "pipe2");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (log) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, options.log_file.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  } else {
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    if (err_pipe) posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  }
  if (options.null_stdin) {
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  if (!options.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, options.cwd.c_str());
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  // The inherited environment, with options.env's entries replacing those of the same name.
  std::vector<std::string> env_strings;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view var(*entry);
    const bool replaced = std::any_of(options.env.begin(), options.env.end(), [&](const auto& e) {
      const size_t eq = e.find('=');
      return eq != std::string::npos &&
             var.substr(0, eq + 1) == std::string_view(e).substr(0, eq + 1);
    });
    if (!replaced) env_strings.emplace_back(var);
  }
  env_strings.insert(env_strings.end(), options.env.begin(), options.env.end());
  std::vector<char*> envp;
  for (std::string& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const int error = posix_spawn(&pid, argv[0], &actions, &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (out[1] >= 0) ::close(out[1]);
  if (err[1] >= 0) ::close(err[1]);
  if (error != 0) {
    if (out[0] >= 0) ::close(out[0]);
    if (err[0] >= 0) ::close(err[0]);
    return absl::ErrnoToStatus(error, absl::StrCat("posix_spawn ", args[0]));
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, out[0], err[0]));
}

ChildProcess::~ChildProcess() {
  Kill();
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
}

absl::StatusOr<std::string> ChildProcess::ReadLine(absl::Time deadline) {
  while (true) {
    const size_t newline = out_.find('\n', line_start_);
    if (newline != std::string::npos) {
      std::string line = out_.substr(line_start_, newline - line_start_);
      line_start_ = newline + 1;
      return line;
    }
    if (out_fd_ < 0) {
      return absl::InternalError(
          absl::StrCat("exited; stdout: '", out_.substr(line_start_), "'; stderr: '", err_, "'"));
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError("no line in time");
    Pump(left);
  }
}

std::string ChildProcess::RemainingStdout() {
  while (out_fd_ >= 0) {
    char chunk[4096];
    const ssize_t n = ::read(out_fd_, chunk, sizeof(chunk));
    if (n > 0) {
      out_.append(chunk, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      ::close(out_fd_);
      out_fd_ = -1;
    }
  }
  std::string rest = out_.substr(line_start_);
  line_start_ = out_.size();
  return rest;
}

bool ChildProcess::Pump(absl::Duration timeout) {
  pollfd fds[2];
  int n = 0;
  if (out_fd_ >= 0) fds[n++] = {out_fd_, POLLIN, 0};
  if (err_fd_ >= 0) fds[n++] = {err_fd_, POLLIN, 0};
  if (n == 0) return false;
  const int ready = ::poll(fds, n, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (ready <= 0) return true;
  for (int i = 0; i < n; ++i) {
    if (fds[i].revents == 0) continue;
    const bool is_out = fds[i].fd == out_fd_;
    char chunk[4096];
    const ssize_t got = ::read(fds[i].fd, chunk, sizeof(chunk));
    if (got > 0) {
      (is_out ? out_ : err_).append(chunk, static_cast<size_t>(got));
    } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
      ::close(fds[i].fd);
      (is_out ? out_fd_ : err_fd_) = -1;
    }
  }
  return out_fd_ >= 0 || err_fd_ >= 0;
}

absl::StatusOr<int> ChildProcess::Wait(absl::Time deadline) {
  while (absl::Now() < deadline && Pump(deadline - absl::Now())) {
  }
  if (pid_ <= 0) return absl::FailedPreconditionError("already reaped");
  absl::StatusOr<int> status = WaitForExit(deadline);
  if (!status.ok()) {
    Kill();
    return absl::DeadlineExceededError("the process did not exit in time (killed)");
  }
  return status;
}

absl::StatusOr<int> ChildProcess::WaitForExit(absl::Time deadline) {
  if (pid_ <= 0) return absl::FailedPreconditionError("already reaped");
  while (true) {
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      return status;
    }
    if (done < 0 && errno != EINTR) return absl::ErrnoToStatus(errno, "waitpid");
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError("the process did not exit in time");
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

absl::StatusOr<int> ChildProcess::Terminate(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("the process is not running");
  Signal(SIGTERM);
  return Wait(absl::Now() + timeout);
}

void ChildProcess::Signal(int signal) {
  if (pid_ > 0) ::kill(pid_, signal);
}

void ChildProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

std::string WaitStatusString(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

std::string BinaryNextToTests(const std::string& name) {
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  return (self.parent_path() / ".." / "bin" / name).lexically_normal().string();
}

std::string GanServer::address() const { return absl::StrCat("127.0.0.1:", port); }

absl::StatusOr<GanServer> StartGanServer(const std::map<std::string, std::string>& flags,
                                         absl::Duration timeout, const ChildOptions& options) {
  std::map<std::string, std::string> all = {{"--listen", "127.0.0.1:0"},
                                            {"--default_dataset", "synthetic"},
                                            {"--checkpoint_every", "2"},
                                            {"--threads_per_job", "1"}};
  for (const auto& [name, value] : flags) all[name] = value;
  std::vector<std::string> args;
  for (const auto& [name, value] : all) {
    args.push_back(name);
    args.push_back(value);
  }
  return StartGanServerWithArgs(args, timeout, options);
}

absl::StatusOr<GanServer> StartGanServerWithArgs(const std::vector<std::string>& args,
                                                 absl::Duration timeout,
                                                 const ChildOptions& options) {
  const std::string binary = BinaryNextToTests("gan-server");
  if (::access(binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("no gan-server binary at ", binary, " (build the gan-server target)"));
  }
  std::vector<std::string> argv = {binary};
  argv.insert(argv.end(), args.begin(), args.end());
  GanServer server;
  absl::StatusOr<std::unique_ptr<ChildProcess>> process = ChildProcess::Start(argv, options);
  if (!process.ok()) return process.status();
  server.process = *std::move(process);
  absl::StatusOr<std::string> line = server.process->ReadLine(absl::Now() + timeout);
  if (!line.ok()) {
    return absl::Status(
        line.status().code(),
        absl::StrCat("gan-server did not print its 'listening' line: ", line.status().message()));
  }
  // "gan-server listening on 127.0.0.1:0 (port 41235), data in /tmp/..."
  const size_t at = line->find("(port ");
  const size_t end = at == std::string::npos ? at : line->find(')', at);
  if (!absl::StartsWith(*line, "gan-server listening on ") || end == std::string::npos ||
      !absl::SimpleAtoi(line->substr(at + 6, end - at - 6), &server.port) || server.port <= 0) {
    return absl::InternalError(absl::StrCat("unexpected first line: '", *line, "'"));
  }
  return server;
}

}  // namespace gan::testing
