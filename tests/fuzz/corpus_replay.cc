#include "tests/fuzz/corpus_replay.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "gtest/gtest.h"

namespace gan::fuzz {

void ReplayCorpus(const std::string& target) {
  const std::filesystem::path dir = std::filesystem::path(GAN_FUZZ_CORPUS_DIR) / target;
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  ASSERT_FALSE(ec) << dir << ": " << ec.message();
  ASSERT_FALSE(files.empty()) << dir << " holds no corpus files";
  std::sort(files.begin(), files.end());
  for (const std::filesystem::path& file : files) {
    SCOPED_TRACE(file.string());
    std::ifstream in(file, std::ios::binary);
    ASSERT_TRUE(in) << "cannot open " << file;
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
    EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
              0);
  }
  std::printf("[ replayed ] %zu files of %s\n", files.size(), dir.c_str());
}

}  // namespace gan::fuzz
