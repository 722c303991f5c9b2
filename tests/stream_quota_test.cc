// StreamQuota (server/stream_quota.h): each principal's open streams are capped on their own, a
// slot is given back exactly once however it ends (Release, destruction, move), and the gauge
// follows the total.

#include "server/stream_quota.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "tests/test_util.h"

namespace gan::server {
namespace {

using ::gan::testing::StatusIs;
using ::testing::HasSubstr;

TEST(StreamQuotaTest, EachPrincipalIsCappedOnItsOwn) {
  StreamQuota quota(2);
  auto a1 = quota.Acquire("alice");
  auto a2 = quota.Acquire("alice");
  ASSERT_TRUE(a1.ok());
  ASSERT_TRUE(a2.ok());
  EXPECT_THAT(quota.Acquire("alice").status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("principal alice has 2 open, the most allowed "
                                 "(--max_streams_per_principal)")));
  auto b1 = quota.Acquire("bob");
  ASSERT_TRUE(b1.ok()) << "another principal has places of its own";
  EXPECT_EQ(quota.open("alice"), 2);
  EXPECT_EQ(quota.open("bob"), 1);
  EXPECT_EQ(quota.total(), 3);

  a1->Release();
  EXPECT_EQ(quota.open("alice"), 1);
  a1->Release();  // at most once
  EXPECT_EQ(quota.open("alice"), 1);
  EXPECT_TRUE(quota.Acquire("alice").ok()) << "a place given back can be taken again";
}

TEST(StreamQuotaTest, TheAnonymousCallerIsOnePrincipalAndZeroMeansNoLimit) {
  StreamQuota capped(1);
  auto first = capped.Acquire("");
  ASSERT_TRUE(first.ok());
  EXPECT_THAT(capped.Acquire("").status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("the anonymous caller (no --auth_tokens: every caller)")));

  StreamQuota unlimited(0);
  std::vector<StreamQuota::Slot> slots;
  for (int i = 0; i < 1000; ++i) {
    auto slot = unlimited.Acquire("");
    ASSERT_TRUE(slot.ok());
    slots.push_back(*std::move(slot));
  }
  EXPECT_EQ(unlimited.total(), 1000);
  slots.clear();
  EXPECT_EQ(unlimited.total(), 0);
}

TEST(StreamQuotaTest, SlotsAreGivenBackOnDestructionAndMoveWithTheirOwner) {
  StreamQuota quota(1);
  {
    auto slot = quota.Acquire("alice");
    ASSERT_TRUE(slot.ok());
    StreamQuota::Slot moved = *std::move(slot);
    StreamQuota::Slot again = std::move(moved);
    EXPECT_EQ(quota.open("alice"), 1) << "moving a slot neither takes nor gives a place";
  }
  EXPECT_EQ(quota.open("alice"), 0);
  EXPECT_EQ(quota.total(), 0);

  // Assigning over a held slot gives the old place back.
  auto alice = quota.Acquire("alice");
  auto bob = quota.Acquire("bob");
  ASSERT_TRUE(alice.ok());
  ASSERT_TRUE(bob.ok());
  *alice = *std::move(bob);
  EXPECT_EQ(quota.open("alice"), 0);
  EXPECT_EQ(quota.open("bob"), 1);
}

TEST(StreamQuotaTest, TheGaugeFollowsTheTotalUnderConcurrency) {
  prometheus::Registry registry;
  prometheus::Gauge& gauge =
      prometheus::BuildGauge().Name("gan_metric_streams_open").Register(registry).Add({});
  // Four threads per principal and two places each: some are refused, none goes over.
  StreamQuota quota(2, &gauge);
  constexpr int kThreads = 8, kRounds = 2000;
  std::vector<std::thread> threads;
  std::atomic<int> refused{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string principal = t % 2 ? "alice" : "bob";
      for (int r = 0; r < kRounds; ++r) {
        auto slot = quota.Acquire(principal);
        if (!slot.ok()) {
          ++refused;
          continue;
        }
        EXPECT_LE(quota.open(principal), 2);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(quota.total(), 0);
  EXPECT_EQ(quota.open("alice"), 0);
  EXPECT_EQ(gauge.Value(), 0);
  auto slot = quota.Acquire("alice");
  ASSERT_TRUE(slot.ok());
  EXPECT_EQ(gauge.Value(), 1);
}

}  // namespace
}  // namespace gan::server
