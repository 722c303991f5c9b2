#include "server/dataset_registry.h"

#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace gan::server {
namespace {

absl::Status CheckName(const std::string& name) {
  if (name.empty() || name.size() > 64) {
    return absl::InvalidArgumentError("dataset: name must have 1 to 64 characters");
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("dataset: '", absl::CHexEscape(name),
                       "' may only use letters, digits, '.', '_' and '-' (no paths)"));
    }
  }
  if (absl::StrContains(name, "..") || name == ".") {
    return absl::InvalidArgumentError(absl::StrCat("dataset: '", name, "' is not a valid name"));
  }
  return absl::OkStatus();
}

}  // namespace

DatasetRegistry::DatasetRegistry(std::string data_dir, std::string fashion_mnist_dir)
    : data_dir_(std::move(data_dir)), fashion_mnist_dir_(std::move(fashion_mnist_dir)) {}

absl::StatusOr<std::shared_ptr<const ImageDataset>> DatasetRegistry::Load(const std::string& name) {
  if (auto s = CheckName(name); !s.ok()) return s;
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(name);
    if (it != cache_.end()) return it->second;
  }
  absl::StatusOr<ImageDataset> dataset;
  if (IsBuiltinDataset(name)) {
    dataset = LoadBuiltinDataset(name, fashion_mnist_dir_);
  } else {
    namespace fs = std::filesystem;
    std::error_code error;
    const fs::path root = fs::weakly_canonical(fs::path(data_dir_) / "datasets", error);
    const fs::path dir = fs::weakly_canonical(root / name, error);
    const std::string root_prefix = root.string() + "/";
    if (error || !absl::StartsWith(dir.string(), root_prefix)) {
      return absl::InvalidArgumentError(
          absl::StrCat("dataset: '", name, "' leads outside the datasets folder"));
    }
    if (!fs::is_directory(dir, error)) {
      return absl::NotFoundError(absl::StrCat("dataset: no dataset '", name, "' (looked for ",
                                              (root / name).string(),
                                              "/train-images-idx3-ubyte[.gz])"));
    }
    dataset = LoadIdxImageDirectory(dir.string(), name);
  }
  if (!dataset.ok()) return dataset.status();
  auto shared = std::make_shared<const ImageDataset>(*std::move(dataset));
  absl::MutexLock lock(&mu_);
  return cache_.emplace(name, std::move(shared)).first->second;
}

}  // namespace gan::server
