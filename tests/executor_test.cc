// The bounded executor RPC handlers hand blocking work to.

#include "server/executor.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace gan::server {
namespace {

TEST(ExecutorTest, RunsEverythingQueuedAndRefusesBeyondTheBound) {
  Executor executor("test", /*threads=*/1, /*max_queue=*/2);
  absl::Notification release, started;
  std::atomic<int> ran{0};
  ASSERT_TRUE(executor.TrySchedule([&] {
    started.Notify();
    release.WaitForNotification();
    ++ran;
  }));
  started.WaitForNotification();  // the only worker is busy now
  EXPECT_TRUE(executor.TrySchedule([&] { ++ran; }));
  EXPECT_TRUE(executor.TrySchedule([&] { ++ran; }));
  EXPECT_EQ(executor.queued(), 2);
  bool refused_ran = false;
  EXPECT_FALSE(executor.TrySchedule([&] { refused_ran = true; })) << "the queue holds 2";
  release.Notify();
  executor.Shutdown();  // drains what was queued
  EXPECT_EQ(ran.load(), 3);
  EXPECT_FALSE(refused_ran);
  EXPECT_FALSE(executor.TrySchedule([] {})) << "nothing is taken after Shutdown";
}

TEST(ExecutorTest, IdleWorkersTakeWorkEvenWithNoQueue) {
  Executor executor("test", /*threads=*/2, /*max_queue=*/0);
  absl::Notification done;
  // Workers count as idle once they reach their wait; until then there is no room.
  bool scheduled = false;
  for (int i = 0; i < 5000 && !scheduled; ++i) {
    scheduled = executor.TrySchedule([&] { done.Notify(); });
    if (!scheduled) absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_TRUE(scheduled);
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

// thread_init runs once on each worker, before any closure runs there (the inference executor
// sets each worker's OpenMP team size with it).
TEST(ExecutorTest, EachWorkerRunsItsInitBeforeItsFirstClosure) {
  constexpr int kThreads = 3;
  thread_local bool initialized = false;
  std::atomic<int> inits{0}, uninitialized_runs{0}, runs{0};
  {
    Executor executor("test", kThreads, /*max_queue=*/64, [&] {
      initialized = true;
      ++inits;
    });
    for (int i = 0; i < 20; ++i) {
      while (!executor.TrySchedule([&] {
        if (!initialized) ++uninitialized_runs;
        ++runs;
      })) {
        absl::SleepFor(absl::Milliseconds(1));
      }
    }
    executor.Shutdown();
  }
  EXPECT_EQ(runs.load(), 20);
  EXPECT_EQ(inits.load(), kThreads);
  EXPECT_EQ(uninitialized_runs.load(), 0);
}

}  // namespace
}  // namespace gan::server
