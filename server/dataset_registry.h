#ifndef GAN_SERVER_DATASET_REGISTRY_H_
#define GAN_SERVER_DATASET_REGISTRY_H_

// Resolves dataset names from clients. Built-ins: "fashion-mnist" (Debian's dataset-fashion-mnist;
// FAILED_PRECONDITION naming the package when it is absent) and "synthetic". Any other name is a
// folder <data_dir>/datasets/<name>/ holding train-images-idx3-ubyte[.gz]; names are
// [A-Za-z0-9._-]{1,64} without "..", and a symlink leading outside the datasets folder is refused.
// Loaded datasets are cached and shared. Thread-safe.

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/dataset.h"

namespace gan::server {

class DatasetRegistry {
 public:
  DatasetRegistry(std::string data_dir, std::string fashion_mnist_dir = kFashionMnistDir);

  // INVALID_ARGUMENT for a malformed name, NOT_FOUND for an unknown folder, FAILED_PRECONDITION
  // for a missing built-in.
  absl::StatusOr<std::shared_ptr<const ImageDataset>> Load(const std::string& name);

 private:
  std::string data_dir_, fashion_mnist_dir_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const ImageDataset>> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gan::server

#endif  // GAN_SERVER_DATASET_REGISTRY_H_
