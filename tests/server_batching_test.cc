// Dynamic batching (server/batcher.h) and the ScoringEngine and Server over it. What a user relies
// on: concurrent requests for one model are merged into one network pass (up to
// max_batch_images) and get the answers they would have got alone; a burst beyond the queue bound
// is RESOURCE_EXHAUSTED at once; a request abandoned (deadline passed, client gone) before its
// batch runs is not computed; requests for different jobs all complete.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "core/checkpoint.h"
#include "core/gan_spec.h"
#include "core/presets.h"
#include "core/safetensors.h"
#include "core/scorer.h"
#include "gan/v1/service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/batcher.h"
#include "server/executor.h"
#include "server/scoring_engine.h"
#include "server/server.h"
#include "server/server_metrics.h"
#include "tests/in_process_server.h"
#include "tests/test_jobs.h"
#include "tests/test_util.h"

namespace gan::server {
namespace {

using ::gan::testing::IsOk;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StatusIs;
using ::gan::testing::TinyJob;
using ::testing::HasSubstr;

// ---------------------------------------------------------------------------------------------
// Batcher on its own, with items that only record what happens to them.

struct Record {
  absl::Mutex mu;
  std::vector<std::vector<int>> batches;  // item ids per batch run
  std::vector<std::pair<int, absl::Status>> failed;
  int completed = 0;
};

class FakeItem : public BatchItem {
 public:
  FakeItem(int id, int64_t images, Record* record, absl::Time deadline = absl::InfiniteFuture(),
           const std::atomic<bool>* cancelled = nullptr)
      : BatchItem(images, deadline), id(id), record_(record), cancelled_(cancelled) {}

  bool Cancelled() const override { return cancelled_ != nullptr && cancelled_->load(); }
  void Fail(const absl::Status& status) override {
    absl::MutexLock lock(&record_->mu);
    record_->failed.emplace_back(id, status);
    ++record_->completed;
  }

  const int id;

 private:
  Record* record_;
  const std::atomic<bool>* cancelled_;
};

// Records each batch's ids; `gate`, when set, blocks every batch until notified.
Batcher::RunFn Recorder(Record* record, absl::Notification* started = nullptr,
                        absl::Notification* gate = nullptr) {
  return [record, started, gate](const std::string&, BatchItems items) {
    if (started != nullptr && !started->HasBeenNotified()) started->Notify();
    if (gate != nullptr) gate->WaitForNotification();
    std::vector<int> ids;
    for (const auto& item : items) ids.push_back(static_cast<FakeItem&>(*item).id);
    absl::MutexLock lock(&record->mu);
    record->batches.push_back(ids);
    record->completed += static_cast<int>(items.size());
  };
}

void WaitForCompleted(Record* record, int n) {
  for (int i = 0; i < 3000; ++i) {
    {
      absl::MutexLock lock(&record->mu);
      if (record->completed >= n) return;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

TEST(BatcherTest, MergesConcurrentRequestsUpToMaxBatchImages) {
  Record record;
  Executor executor("test", 1, 16);
  BatcherOptions options;
  options.max_batch_images = 8;
  options.timeout = absl::Milliseconds(200);
  options.max_queued_requests = 100;
  {
    Batcher batcher(options, &executor, Recorder(&record));
    for (int i = 0; i < 20; ++i) {
      batcher.Submit("model", "m", std::make_unique<FakeItem>(i, 1, &record));
    }
    WaitForCompleted(&record, 20);
    executor.Shutdown();
  }
  absl::MutexLock lock(&record.mu);
  ASSERT_EQ(record.batches.size(), 3u);
  EXPECT_EQ(record.batches[0], (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(record.batches[1], (std::vector<int>{8, 9, 10, 11, 12, 13, 14, 15}));
  EXPECT_EQ(record.batches[2], (std::vector<int>{16, 17, 18, 19}));  // after the timeout
  EXPECT_TRUE(record.failed.empty());
}

TEST(BatcherTest, ARequestLargerThanABatchRunsAloneAndKeysDoNotMix) {
  Record record;
  Executor executor("test", 1, 16);
  BatcherOptions options;
  options.max_batch_images = 8;
  options.timeout = absl::Milliseconds(50);
  options.max_queued_requests = 100;
  {
    Batcher batcher(options, &executor, Recorder(&record));
    batcher.Submit("a", "a", std::make_unique<FakeItem>(0, 3, &record));
    batcher.Submit("a", "a", std::make_unique<FakeItem>(1, 20, &record));
    batcher.Submit("b", "b", std::make_unique<FakeItem>(2, 1, &record));
    batcher.Submit("a", "a", std::make_unique<FakeItem>(3, 2, &record));
    WaitForCompleted(&record, 4);
    executor.Shutdown();
  }
  absl::MutexLock lock(&record.mu);
  std::vector<std::vector<int>> batches = record.batches;
  std::sort(batches.begin(), batches.end());
  EXPECT_EQ(batches, (std::vector<std::vector<int>>{{0}, {1}, {2}, {3}}));
}

TEST(BatcherTest, ExpiredAndCancelledRequestsAreNotComputed) {
  Record record;
  Executor executor("test", 1, 16);
  BatcherOptions options;
  options.max_batch_images = 64;
  options.timeout = absl::Milliseconds(20);
  options.max_queued_requests = 100;
  std::atomic<bool> cancelled{true};
  {
    Batcher batcher(options, &executor, Recorder(&record));
    batcher.Submit("m", "m",
                   std::make_unique<FakeItem>(0, 1, &record, absl::Now() - absl::Seconds(1)));
    batcher.Submit("m", "m",
                   std::make_unique<FakeItem>(1, 1, &record, absl::InfiniteFuture(), &cancelled));
    batcher.Submit("m", "m", std::make_unique<FakeItem>(2, 1, &record));
    // Expires while it waits for the batch to form.
    batcher.Submit("m", "m",
                   std::make_unique<FakeItem>(3, 1, &record, absl::Now() + absl::Milliseconds(5)));
    WaitForCompleted(&record, 4);
    executor.Shutdown();
  }
  absl::MutexLock lock(&record.mu);
  EXPECT_EQ(record.batches, (std::vector<std::vector<int>>{{2}}));
  ASSERT_EQ(record.failed.size(), 3u);
  std::sort(record.failed.begin(), record.failed.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  EXPECT_EQ(record.failed[0].second.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(record.failed[1].second.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(record.failed[2].second.code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(BatcherTest, ABurstBeyondTheQueueBoundIsResourceExhaustedAtOnce) {
  Record record;
  Executor executor("test", 1, 16);
  BatcherOptions options;
  options.max_batch_images = 1;  // one request per batch
  options.timeout = absl::ZeroDuration();
  options.max_queued_requests = 4;
  absl::Notification started, gate;
  {
    Batcher batcher(options, &executor, Recorder(&record, &started, &gate));
    batcher.Submit("m", "m", std::make_unique<FakeItem>(0, 1, &record));
    started.WaitForNotification();  // item 0 is computing (and holds the only thread)
    for (int i = 1; i <= 14; ++i) {
      batcher.Submit("m", "m", std::make_unique<FakeItem>(i, 1, &record));
    }
    {
      absl::MutexLock lock(&record.mu);
      ASSERT_EQ(record.failed.size(), 10u);  // answered at once: nothing was computed for them
      for (const auto& [id, status] : record.failed) {
        EXPECT_GT(id, 4);
        EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted,
                                     HasSubstr("--max_inference_queue")));
      }
    }
    EXPECT_EQ(batcher.queued(), 4);
    gate.Notify();
    WaitForCompleted(&record, 15);
    executor.Shutdown();
  }
  absl::MutexLock lock(&record.mu);
  EXPECT_EQ(record.batches, (std::vector<std::vector<int>>{{0}, {1}, {2}, {3}, {4}}));
}

// ---------------------------------------------------------------------------------------------
// oneDNN at different batch sizes: the question whether batching changes answers at all.

std::vector<float> RandomImages(int64_t n, int64_t floats, uint64_t seed) {
  std::vector<float> images(n * floats);
  uint64_t x = seed;
  for (float& v : images) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    v = static_cast<float>(x >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
  }
  return images;
}

// The seed preset's convolutional discriminator (weights exported from PyTorch) scores 64 images
// in one pass of 64, in passes of 16 and one image at a time: equal within 1e-6, and this test
// reports whether they are bit for bit identical.
TEST(BatchSizeTest, SeedDiscriminatorGivesTheSameScoresAtEveryBatchSize) {
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::GanSpec spec, PresetSpec("seed"));
  GAN_ASSERT_OK_AND_ASSIGN(GanShapes shapes, ValidateGanSpec(spec, GanLimits{}));
  GAN_ASSERT_OK_AND_ASSIGN(SafeTensors weights,
                           ReadSafeTensorsFile(::gan::testing::TestDataPath(
                               "reference/interchange/seed_discriminator.safetensors")));
  ParameterStore store("discriminator", shapes.discriminator);
  ASSERT_THAT(LoadNetworkWeights(weights, &store), IsOk());
  constexpr int64_t n = 64;
  Scorer scorer(shapes.discriminator, &store, 64);
  const std::vector<float> images = RandomImages(n, scorer.image_floats(), 11);

  auto score_in = [&](int64_t pass) {
    std::vector<float> logits(n), probabilities(n);
    for (int64_t start = 0; start < n; start += pass) {
      EXPECT_THAT(scorer.Score(absl::MakeConstSpan(images.data() + start * scorer.image_floats(),
                                                   pass * scorer.image_floats()),
                               pass, absl::MakeSpan(logits.data() + start, pass),
                               absl::MakeSpan(probabilities.data() + start, pass)),
                  IsOk());
    }
    return std::make_pair(logits, probabilities);
  };
  const auto [logits64, probabilities64] = score_in(64);
  for (int64_t pass : {1, 16}) {
    const auto [logits, probabilities] = score_in(pass);
    int identical = 0;
    double max_logit = 0, max_probability = 0;
    for (int64_t i = 0; i < n; ++i) {
      identical += logits[i] == logits64[i] && probabilities[i] == probabilities64[i];
      max_logit = std::max(max_logit, double{std::fabs(logits[i] - logits64[i])});
      max_probability =
          std::max(max_probability, double{std::fabs(probabilities[i] - probabilities64[i])});
    }
    std::printf(
        "seed discriminator, passes of %ld vs one of 64: %d/64 bit-identical, max |d logit| "
        "%.3g, max |d probability| %.3g\n",
        static_cast<long>(pass), identical, max_logit, max_probability);
    RecordProperty(absl::StrCat("identical_at_", pass), identical);
    EXPECT_LE(max_probability, 1e-6) << "pass " << pass;
    EXPECT_LE(max_logit, 1e-5) << "pass " << pass;
  }
}

// ---------------------------------------------------------------------------------------------
// Through the Server (in-process, real gRPC on loopback) and its ScoringEngine.

std::string RandomPixels(int64_t n, uint64_t seed) {
  std::string bytes(n * 784, '\0');
  uint64_t x = seed;
  for (char& b : bytes) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    b = static_cast<char>(x >> 56);
  }
  return bytes;
}

gan::v1::ScoreRequest ScoreRequestFor(const std::string& job_id, const std::string& pixels) {
  gan::v1::ScoreRequest request;
  request.set_job_id(job_id);
  for (int64_t d :
       {static_cast<int64_t>(pixels.size() / 784), int64_t{28}, int64_t{28}, int64_t{1}}) {
    request.add_shape(d);
  }
  request.set_uint8_pixels(pixels);
  return request;
}

// GET /metrics from the server's exposer.
std::string Scrape(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  std::string text;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    const std::string get = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, get.data(), get.size()) == static_cast<ssize_t>(get.size())) {
      char buffer[4096];
      ssize_t got;
      while ((got = read(fd, buffer, sizeof(buffer))) > 0) text.append(buffer, got);
    }
  }
  close(fd);
  return text;
}

// The value of `series` (name and labels exactly as exposed), or -1 when absent.
double MetricValue(const std::string& exposition, const std::string& series) {
  const size_t at = exposition.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(exposition.substr(at + series.size() + 2));
}

class BatchingServerTest : public gan::testing::InProcessServerTest {
 protected:
  void SetUp() override {
    InProcessServerTest::SetUp();
    options_.metrics_listen = "127.0.0.1:0";
  }

  // Trains TinyJob(steps) with `seed` to its end; returns the job id.
  std::string TrainTinyJob(uint64_t seed, int steps = 6) {
    gan::v1::SubmitJobRequest submit;
    *submit.mutable_spec() = TinyJob(steps);
    submit.mutable_spec()->set_seed(seed);
    gan::v1::Job job;
    {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      EXPECT_TRUE(training_->SubmitJob(&context, submit, &job).ok());
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    gan::v1::StreamMetricsRequest stream;
    stream.set_job_id(job.job_id());
    auto reader = training_->StreamMetrics(&context, stream);
    gan::v1::MetricEvent event;
    while (reader->Read(&event)) {
    }
    EXPECT_TRUE(reader->Finish().ok());
    return job.job_id();
  }

  grpc::Status Score(const gan::v1::ScoreRequest& request, gan::v1::ScoreResponse* response,
                     int deadline_ms = 30000) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
    return scoring_->Score(&context, request, response);
  }
};

// 16 concurrent single-image requests run as one pass of 16 and get, within 1e-6, the answers
// each gets alone.
TEST_F(BatchingServerTest, ConcurrentSingleImageRequestsAreBatchedAndEqualScoringAlone) {
  options_.max_batch_images = 16;
  options_.batch_timeout_micros = 2'000'000;  // only a full batch starts early
  Start();
  const std::string job = TrainTinyJob(3);
  constexpr int kRequests = 16;
  std::vector<gan::v1::ScoreRequest> requests;
  for (int i = 0; i < kRequests; ++i) requests.push_back(ScoreRequestFor(job, RandomPixels(1, i)));

  // Concurrently first (so the cached model has run no pass yet).
  std::vector<gan::v1::ScoreResponse> batched(kRequests);
  std::vector<grpc::Status> statuses(kRequests);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kRequests; ++i) {
      threads.emplace_back([&, i] { statuses[i] = Score(requests[i], &batched[i]); });
    }
    for (auto& t : threads) t.join();
  }
  const std::string model = absl::StrCat("{model=\"", job, "\"}");
  const std::string after_batch = Scrape(server_->metrics_port());
  // One pass of 16 images, not 16 passes of one.
  EXPECT_EQ(MetricValue(after_batch, "gan_inference_batch_images_count" + model), 1) << after_batch;
  EXPECT_EQ(MetricValue(after_batch, "gan_inference_batch_images_sum" + model), 16);

  // Then each alone (the batch never fills: each waits out the timeout, so shorten it).
  server_.reset();
  options_.batch_timeout_micros = 0;
  Start();
  int identical = 0;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    gan::v1::ScoreResponse alone;
    ASSERT_TRUE(Score(requests[i], &alone).ok());
    ASSERT_EQ(alone.probabilities_size(), 1);
    ASSERT_EQ(batched[i].probabilities_size(), 1);
    EXPECT_NEAR(batched[i].probabilities(0), alone.probabilities(0), 1e-6) << i;
    EXPECT_NEAR(batched[i].logits(0), alone.logits(0), 1e-6) << i;
    EXPECT_EQ(batched[i].checkpoint_step(), alone.checkpoint_step());
    identical += batched[i].logits(0) == alone.logits(0);
  }
  std::printf("TinyJob discriminator: %d/%d batched answers bit-identical to scoring alone\n",
              identical, kRequests);
  RecordProperty("bit_identical", identical);
}

TEST_F(BatchingServerTest, ConcurrentRequestsForTwoJobsAllComplete) {
  Start();
  const std::string a = TrainTinyJob(3), b = TrainTinyJob(4);
  std::vector<gan::v1::ScoreRequest> requests;
  std::vector<gan::v1::ScoreResponse> expected;
  for (int i = 0; i < 8; ++i) {
    requests.push_back(ScoreRequestFor(i % 2 ? a : b, RandomPixels(1 + i % 3, 50 + i)));
    gan::v1::ScoreResponse alone;
    ASSERT_TRUE(Score(requests.back(), &alone).ok());
    expected.push_back(alone);
  }
  constexpr int kThreads = 8, kRounds = 6;
  std::atomic<int> failures{0}, mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        const int i = (t + r) % 8;
        gan::v1::ScoreResponse response;
        if (!Score(requests[i], &response).ok()) {
          ++failures;
          continue;
        }
        for (int k = 0; k < response.logits_size(); ++k) {
          if (std::fabs(response.logits(k) - expected[i].logits(k)) > 1e-6) ++mismatches;
        }
        if (response.logits_size() != expected[i].logits_size()) ++mismatches;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
}

TEST_F(BatchingServerTest, ABurstBeyondTheQueueIsResourceExhausted) {
  options_.inference_threads = 1;
  options_.max_inference_queue = 2;
  options_.batch_timeout_micros = 500'000;  // the burst arrives while the first batch forms
  Start();
  const std::string job = TrainTinyJob(3);
  constexpr int kBurst = 12;
  std::vector<grpc::Status> statuses(kBurst);
  std::vector<std::thread> threads;
  for (int i = 0; i < kBurst; ++i) {
    threads.emplace_back([&, i] {
      gan::v1::ScoreResponse response;
      statuses[i] = Score(ScoreRequestFor(job, RandomPixels(1, i)), &response);
    });
  }
  for (auto& t : threads) t.join();
  int ok = 0, exhausted = 0;
  for (const grpc::Status& s : statuses) {
    if (s.ok()) ++ok;
    if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++exhausted;
      EXPECT_THAT(s.error_message(), HasSubstr("--max_inference_queue"));
    }
  }
  EXPECT_EQ(ok + exhausted, kBurst);
  EXPECT_GE(ok, 1);
  EXPECT_GE(exhausted, kBurst - 2 * 2);  // at most the bound waits, per batch that formed
}

TEST_F(BatchingServerTest, ARequestPastItsDeadlineIsNotComputed) {
  options_.batch_timeout_micros = 400'000;  // the batch forms after the client's deadline
  Start();
  const std::string job = TrainTinyJob(3);
  gan::v1::ScoreResponse response;
  const grpc::Status status = Score(ScoreRequestFor(job, RandomPixels(1, 1)), &response, 100);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  absl::SleepFor(absl::Milliseconds(600));  // the batch has formed (without it)
  const std::string metrics = Scrape(server_->metrics_port());
  EXPECT_EQ(MetricValue(metrics, absl::StrCat("gan_inference_rejected_total{model=\"", job,
                                              "\",reason=\"deadline_exceeded\"}")),
            1)
      << metrics;
  EXPECT_EQ(
      MetricValue(metrics, absl::StrCat("gan_inference_batch_images_count{model=\"", job, "\"}")),
      0);
}

}  // namespace
}  // namespace gan::server
