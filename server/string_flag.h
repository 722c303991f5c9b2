#ifndef GAN_SERVER_STRING_FLAG_H_
#define GAN_SERVER_STRING_FLAG_H_

// A string option that never swallows the next flag. CLI11 2.1 refuses `--name=` (an empty value)
// and, worse, reads `--name= --other=1` as the value "--other=1" of --name. Options added here
// take `--name=` and a bare `--name` as the empty string and leave the next argument alone;
// whether empty is allowed is for the options' validation (Server::BuildAndStart) to say. Given
// twice, the last value counts.

#include <string>

#include "CLI/CLI.hpp"

namespace gan::server {

inline CLI::Option* AddStringFlag(CLI::App& app, const std::string& name, std::string& value,
                                  const std::string& description) {
  const std::string shown = value.empty() ? "empty" : value;
  return app.add_option(name, value, description + " (default: " + shown + ")")
      ->expected(0, 1)
      ->default_str("")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
}

}  // namespace gan::server

#endif  // GAN_SERVER_STRING_FLAG_H_
