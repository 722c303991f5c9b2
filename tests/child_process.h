#ifndef GAN_TESTS_CHILD_PROCESS_H_
#define GAN_TESTS_CHILD_PROCESS_H_

// A child process for end-to-end tests (gan-server, ganctl, prometheus): spawned with
// posix_spawn, stdout on a pipe (or stdout+stderr to a log file), stderr inherited or on a pipe,
// SIGKILLed and reaped by the destructor if still running.

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gan::testing {

struct ChildOptions {
  // When set, stdout and stderr go to this file (truncated) instead of pipes.
  std::string log_file;
  // stderr on a pipe (read by Pump/Wait) instead of inherited.
  bool capture_stderr = false;
  // stdin from /dev/null.
  bool null_stdin = false;
  // Working directory of the child ("" = inherit).
  std::string cwd;
  // Fail with NotFound when argv[0] is not executable.
  bool check_executable = false;
  // NAME=VALUE entries added to (or replacing those of) the inherited environment.
  std::vector<std::string> env;
};

class ChildProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(std::vector<std::string> argv,
                                                             const ChildOptions& options = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // All stdout / stderr read so far (by ReadLine, Pump or Wait).
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

  // The next line of stdout (without '\n').
  absl::StatusOr<std::string> ReadLine(absl::Time deadline);
  // Stdout not yet returned by ReadLine plus whatever is left in the pipe (blocks until EOF).
  std::string RemainingStdout();

  // Reads whatever the child writes for up to `timeout` (returns early once something arrived
  // or both pipes are closed). Returns false once both pipes are at EOF.
  bool Pump(absl::Duration timeout);
  // Collects all output and the exit; SIGKILLs the child at `deadline`. Returns the wait status.
  absl::StatusOr<int> Wait(absl::Time deadline);
  // Waits (without reading output) for the exit until `deadline`. Returns the wait status.
  absl::StatusOr<int> WaitForExit(absl::Time deadline);
  // SIGTERM, then waits up to `timeout` (SIGKILL and reap after it). Returns the wait status.
  absl::StatusOr<int> Terminate(absl::Duration timeout);

  void Signal(int signal);
  // SIGKILL and reap.
  void Kill();

 private:
  ChildProcess(pid_t pid, int out_fd, int err_fd) : pid_(pid), out_fd_(out_fd), err_fd_(err_fd) {}

  pid_t pid_;
  int out_fd_, err_fd_;
  std::string out_, err_;
  size_t line_start_ = 0;  // in out_: where the next ReadLine starts
};

// "exit code N", "signal S" or "wait status W".
std::string WaitStatusString(int status);

// build/tests/<test> -> build/bin/<name>.
std::string BinaryNextToTests(const std::string& name);

// A gan-server started by StartGanServer.
struct GanServer {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
  std::string address() const;
};

// Starts build/bin/gan-server with `flags` (over defaults: --listen 127.0.0.1:0, the synthetic
// dataset, a checkpoint every 2 steps, one thread per job; --data_dir must be given) and waits
// up to `timeout` for its "gan-server listening on ... (port N)" line.
absl::StatusOr<GanServer> StartGanServer(const std::map<std::string, std::string>& flags,
                                         absl::Duration timeout, const ChildOptions& options = {});
// Starts build/bin/gan-server with exactly `args` (no defaults added) and waits as above.
absl::StatusOr<GanServer> StartGanServerWithArgs(const std::vector<std::string>& args,
                                                 absl::Duration timeout,
                                                 const ChildOptions& options = {});

}  // namespace gan::testing

#endif  // GAN_TESTS_CHILD_PROCESS_H_
