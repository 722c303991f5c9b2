#include "tests/postgres_cluster.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/child_process.h"

namespace gan::testing {
namespace {

// The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl (Debian's layout).
std::string FindBinDir() {
  std::vector<std::string> dirs;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", error)) {
    const std::string bin = entry.path().string() + "/bin";
    if (::access((bin + "/initdb").c_str(), X_OK) == 0 &&
        ::access((bin + "/pg_ctl").c_str(), X_OK) == 0) {
      dirs.push_back(bin);
    }
  }
  std::sort(dirs.begin(), dirs.end(), [](const std::string& a, const std::string& b) {
    return std::atoi(a.c_str() + 20) < std::atoi(b.c_str() + 20);  // after /usr/lib/postgresql/
  });
  return dirs.empty() ? "" : dirs.back();
}

// A loopback port nothing listens on now (the kernel's choice for port 0).
absl::StatusOr<int> FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket() failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(fd);
    return absl::InternalError("cannot bind a loopback port");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresCluster>> PostgresCluster::Start() {
  const std::string bin_dir = FindBinDir();
  if (bin_dir.empty()) {
    return absl::NotFoundError(
        "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (install postgresql)");
  }
  if (::geteuid() == 0) {
    // Where other users cannot traverse the file system (a chroot whose root directory is 0700),
    // the postgres user cannot even start initdb: that is a machine without a usable PostgreSQL,
    // like one without the package, not a failure of the code under test.
    ChildOptions options;
    options.capture_stderr = true;
    options.null_stdin = true;
    options.cwd = "/";
    absl::StatusOr<std::unique_ptr<ChildProcess>> probe = ChildProcess::Start(
        {"/usr/sbin/runuser", "-u", "postgres", "--", bin_dir + "/initdb", "--version"}, options);
    if (probe.ok()) {
      absl::StatusOr<int> status = (*probe)->Wait(absl::Now() + absl::Seconds(60));
      if (status.ok() && (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0)) {
        return absl::NotFoundError(absl::StrCat("the postgres user cannot run ", bin_dir,
                                                "/initdb on this machine (",
                                                WaitStatusString(*status), "): ", (*probe)->err()));
      }
    }
  }
  // Under /tmp, which the postgres user can reach (a test's own temporary directory may not be).
  std::string dir = "/tmp/gan-pg-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  if (::geteuid() == 0) {
    const passwd* postgres = ::getpwnam("postgres");
    if (postgres == nullptr) {
      std::filesystem::remove_all(dir);
      return absl::NotFoundError("running as root and there is no postgres user to run as");
    }
    if (::chown(dir.c_str(), postgres->pw_uid, postgres->pw_gid) != 0) {
      std::filesystem::remove_all(dir);
      return absl::InternalError("cannot hand the cluster directory to postgres");
    }
  }
  absl::StatusOr<int> port = FreePort();
  if (!port.ok()) return port.status();
  std::unique_ptr<PostgresCluster> cluster(new PostgresCluster(bin_dir, dir, *port));
  // No fsync: a test cluster trades durability against power loss for speed (a server crash or
  // stop still loses nothing committed).
  if (absl::Status s =
          cluster->Run("initdb", {"-D", dir + "/data", "--auth=trust", "-U", "postgres",
                                  "--no-sync", "-E", "UTF8", "--locale=C"});
      !s.ok()) {
    return s;
  }
  if (absl::Status s = cluster->StartServer(); !s.ok()) return s;
  return cluster;
}

PostgresCluster::~PostgresCluster() {
  if (running_) {
    Run("pg_ctl", {"-D", dir_ + "/data", "-m", "immediate", "-w", "stop"}).IgnoreError();
  }
  std::error_code error;
  std::filesystem::remove_all(dir_, error);
}

absl::Status PostgresCluster::Run(const std::string& binary,
                                  const std::vector<std::string>& args) const {
  std::vector<std::string> argv;
  if (::geteuid() == 0) argv = {"/usr/sbin/runuser", "-u", "postgres", "--"};
  argv.push_back(bin_dir_ + "/" + binary);
  argv.insert(argv.end(), args.begin(), args.end());
  ChildOptions options;
  options.capture_stderr = true;
  options.null_stdin = true;
  options.cwd = dir_;
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(argv, options);
  if (!child.ok()) {
    // Internal, not NOT_FOUND: only a PostgreSQL that is missing or cannot run at all as the
    // postgres user (Start) makes the tests skip.
    return absl::InternalError(
        absl::StrCat("cannot run ", argv[0], ": ", child.status().message()));
  }
  absl::StatusOr<int> status = (*child)->Wait(absl::Now() + absl::Seconds(60));
  if (!status.ok()) return status.status();
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::InternalError(absl::StrCat(binary, " failed (", WaitStatusString(*status),
                                            "): ", (*child)->out(), (*child)->err()));
  }
  return absl::OkStatus();
}

absl::Status PostgresCluster::StartServer() {
  // Only the loopback port (and a socket in the cluster's own directory): never 5432, never the
  // system's socket directory.
  absl::Status status =
      Run("pg_ctl", {"-D", dir_ + "/data", "-w", "-t", "60", "-l", dir_ + "/log", "-o",
                     absl::StrCat("-p ", port_, " -k ", dir_,
                                  " -c listen_addresses=127.0.0.1 -c fsync=off"
                                  " -c max_connections=200"),
                     "start"});
  running_ = status.ok();
  return status;
}

absl::Status PostgresCluster::Stop() {
  if (!running_) return absl::OkStatus();
  absl::Status status = Run("pg_ctl", {"-D", dir_ + "/data", "-m", "fast", "-w", "stop"});
  if (status.ok()) running_ = false;
  return status;
}

absl::Status PostgresCluster::Restart() {
  if (running_) return absl::OkStatus();
  return StartServer();
}

std::string PostgresCluster::Url(const std::string& database) const {
  return absl::StrCat("postgresql://postgres@127.0.0.1:", port_, "/", database);
}

absl::Status PostgresCluster::Exec(const std::string& database, const std::string& sql) const {
  PGconn* conn = PQconnectdb(Url(database).c_str());
  absl::Status status;
  if (PQstatus(conn) != CONNECTION_OK) {
    status = absl::UnavailableError(absl::StrCat("cannot connect: ", PQerrorMessage(conn)));
  } else {
    PGresult* result = PQexec(conn, sql.c_str());
    const ExecStatusType code = PQresultStatus(result);
    if (code != PGRES_COMMAND_OK && code != PGRES_TUPLES_OK) {
      status = absl::InternalError(absl::StrCat(PQresultErrorMessage(result), " in: ", sql));
    }
    PQclear(result);
  }
  PQfinish(conn);
  return status;
}

absl::StatusOr<std::string> PostgresCluster::CreateDatabase() {
  const std::string name = absl::StrCat("gan_test_", ++databases_);
  if (absl::Status s = Exec("postgres", "CREATE DATABASE " + name); !s.ok()) return s;
  return Url(name);
}

absl::Status PostgresCluster::CreatePasswordDatabase(const std::string& name,
                                                     const std::string& password) {
  for (const std::string& word : {name, password}) {
    if (word.empty() ||
        word.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos) {
      return absl::InvalidArgumentError("role names and passwords here are [a-z0-9_]+");
    }
  }
  if (absl::Status s =
          Exec("postgres", absl::StrCat("CREATE ROLE ", name, " LOGIN PASSWORD '", password, "'"));
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Exec("postgres", absl::StrCat("CREATE DATABASE ", name, " OWNER ", name));
      !s.ok()) {
    return s;
  }
  // pg_hba.conf: the first matching line wins, so this one goes before initdb's trust lines.
  const std::string hba = dir_ + "/data/pg_hba.conf";
  std::string lines;
  {
    std::ifstream in(hba);
    if (!in) return absl::InternalError(absl::StrCat("cannot read ", hba));
    lines.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::ofstream out(hba, std::ios::trunc);  // keeps the file's owner (postgres)
  out << "host " << name << " " << name << " 127.0.0.1/32 scram-sha-256\n" << lines;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", hba));
  return Run("pg_ctl", {"-D", dir_ + "/data", "reload"});
}

namespace {

class SharedClusterEnvironment : public ::testing::Environment {
 public:
  absl::StatusOr<PostgresCluster*> Get() {
    if (!started_) {
      started_ = true;
      absl::StatusOr<std::unique_ptr<PostgresCluster>> cluster = PostgresCluster::Start();
      if (cluster.ok()) {
        cluster_ = *std::move(cluster);
      } else {
        status_ = cluster.status();
      }
    }
    if (!status_.ok()) return status_;
    return cluster_.get();
  }
  void TearDown() override { cluster_.reset(); }

 private:
  bool started_ = false;
  absl::Status status_;
  std::unique_ptr<PostgresCluster> cluster_;
};

SharedClusterEnvironment* Environment() {
  // Owned by GoogleTest, which calls TearDown after the last test.
  static SharedClusterEnvironment* const environment = [] {
    auto* created = new SharedClusterEnvironment;
    ::testing::AddGlobalTestEnvironment(created);
    return created;
  }();
  return environment;
}

// Registered before main runs the tests, so its TearDown is called.
[[maybe_unused]] const bool kRegistered = (Environment(), true);

}  // namespace

absl::StatusOr<PostgresCluster*> SharedPostgresCluster() { return Environment()->Get(); }

}  // namespace gan::testing
