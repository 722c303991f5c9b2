#ifndef GAN_CLIENT_STRING_OPTIONS_H_
#define GAN_CLIENT_STRING_OPTIONS_H_

// String options that cannot swallow the argument after them.
//
// CLI11 2.1 gives an option that needs a value whatever argument comes next: `--server --json
// list` would make "--json" the server, and `--server= list` (CLI11 drops the empty value after
// '=' and takes the next argument instead) would make "list" the server. The options added here
// follow these rules instead:
//   --name=VALUE  the value, which may be empty or start with '-';
//   --name VALUE  the value, which must not start with '-' (a lone "-" is a value);
//   --name        followed by an argument starting with '-' is a command-line error.
// The rules apply to an argument equal to any name added here, whichever command it follows;
// arguments after "--" are positionals and are left alone.

#include <set>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"

namespace gan::ganctl {

class StringOptions {
 public:
  // Adds the option `name` ("--server") to `app`, storing its value in `*value`, which must
  // outlive parsing. An option name may be added to several subcommands.
  CLI::Option* Add(CLI::App* app, const std::string& name, std::string* value,
                   const std::string& description = "");

  // Returns argv as CLI11 must parse it: argv[0], then the arguments with every `--name=` of an
  // option added here split into `--name` and an empty argument, which CLI11 keeps as the value.
  // Throws CLI::ArgumentMismatch (a CLI::ParseError) when `--name` is followed by an argument that
  // starts with '-'.
  std::vector<std::string> Rewrite(int argc, const char* const* argv) const;

 private:
  std::set<std::string> names_;  // with their leading "--"
};

}  // namespace gan::ganctl

#endif  // GAN_CLIENT_STRING_OPTIONS_H_
