#ifndef GAN_TESTS_POSTGRES_CLUSTER_H_
#define GAN_TESTS_POSTGRES_CLUSTER_H_

// A throwaway PostgreSQL server for tests: initdb in a fresh temporary directory, pg_ctl start on
// a free loopback port (never a system cluster on 5432), stopped and removed by the destructor,
// also when a test fails. PostgreSQL refuses to run as root, so as root every PostgreSQL command
// runs as the `postgres` user (runuser -u postgres --), which owns the directory.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace gan::testing {

class PostgresCluster {
 public:
  // NOT_FOUND when no PostgreSQL server binaries are installed, or (as root) the postgres user
  // cannot run them at all, e.g. in a chroot whose root directory only root may enter (callers
  // skip the test, printing why); other errors carry the failing command's output.
  static absl::StatusOr<std::unique_ptr<PostgresCluster>> Start();

  ~PostgresCluster();
  PostgresCluster(const PostgresCluster&) = delete;
  PostgresCluster& operator=(const PostgresCluster&) = delete;

  int port() const { return port_; }
  // postgresql://postgres@127.0.0.1:<port>/<database>
  std::string Url(const std::string& database) const;
  // A new, empty database; returns its URL.
  absl::StatusOr<std::string> CreateDatabase();
  // A login role `name` with `password` and a database `name` it owns, which that role reaches
  // over TCP only with the password (scram-sha-256), as on a production server; the other
  // databases stay password-free for the postgres user. `name` and `password`: [a-z0-9_].
  absl::Status CreatePasswordDatabase(const std::string& name, const std::string& password);

  // Runs SQL text (several statements allowed) in `database`, as another client would.
  absl::Status Exec(const std::string& database, const std::string& sql) const;

  // pg_ctl stop -m fast, and start again on the same port and directory.
  absl::Status Stop();
  absl::Status Restart();
  bool running() const { return running_; }

 private:
  PostgresCluster(std::string bin_dir, std::string dir, int port)
      : bin_dir_(std::move(bin_dir)), dir_(std::move(dir)), port_(port) {}

  // Runs a PostgreSQL binary (as postgres when root); the output is in the status on failure.
  absl::Status Run(const std::string& binary, const std::vector<std::string>& args) const;
  absl::Status StartServer();

  std::string bin_dir_;
  std::string dir_;  // data/, the socket, log
  int port_;
  bool running_ = false;
  int databases_ = 0;
};

// One cluster for every test of this test program, started on first use and stopped and removed
// when the program's tests end (a gtest Environment). The status of the first start is kept.
absl::StatusOr<PostgresCluster*> SharedPostgresCluster();

}  // namespace gan::testing

#endif  // GAN_TESTS_POSTGRES_CLUSTER_H_
