// The --auth_tokens file: TokenTable::Parse on the input, and for a table that parses, Find with
// the input's first line as a token (exercising the hashing and constant-time comparison).

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "server/auth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view contents(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<gan::server::TokenTable> table =
      gan::server::TokenTable::Parse(contents, "fuzz-tokens");
  if (!table.ok()) return 0;
  (void)table->Find(contents.substr(0, contents.find('\n')));
  return 0;
}
