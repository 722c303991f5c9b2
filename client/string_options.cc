#include "client/string_options.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace gan::ganctl {

CLI::Option* StringOptions::Add(CLI::App* app, const std::string& name, std::string* value,
                                const std::string& description) {
  names_.insert(name);
  return app->add_option(name, *value, description);
}

std::vector<std::string> StringOptions::Rewrite(int argc, const char* const* argv) const {
  std::vector<std::string> args;
  args.reserve(static_cast<size_t>(argc) + 1);
  if (argc > 0) args.emplace_back(argv[0]);
  bool positionals_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (positionals_only) {
      args.push_back(arg);
      continue;
    }
    if (arg == "--") {
      positionals_only = true;
      args.push_back(arg);
      continue;
    }
    if (absl::EndsWith(arg, "=") && names_.count(arg.substr(0, arg.size() - 1)) > 0) {
      args.push_back(arg.substr(0, arg.size() - 1));
      args.emplace_back();  // the empty value
      continue;
    }
    args.push_back(arg);
    if (names_.count(arg) == 0 || i + 1 >= argc) continue;  // CLI11 reports a missing value
    const std::string value = argv[i + 1];
    if (value.size() > 1 && value[0] == '-') {
      throw CLI::ArgumentMismatch(absl::StrCat(arg, " needs a value but is followed by ", value,
                                               "; write ", arg,
                                               "=VALUE for a value that starts with '-'"));
    }
    args.push_back(value);
    ++i;
  }
  return args;
}

}  // namespace gan::ganctl
