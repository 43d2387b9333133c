#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "logging/escape.h"
#include "logging/rate_limit.h"

namespace netprobe {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(logging_escape, ControlCharactersCannotForgeLines) {
  EXPECT_EQ(escape_for_log("ok text"), "ok text");
  EXPECT_EQ(escape_for_log("a\nlevel=error pid=1 forged\r\t\x1b[31m\x7f"),
            "a\\nlevel=error pid=1 forged\\r\\t\\x1b[31m\\x7f");
  EXPECT_EQ(escape_for_log("caf\xc3\xa9 \xff\xc3"), "caf\xc3\xa9 \\xff\\xc3");  // bad UTF-8 as bytes
  EXPECT_EQ(escape_for_log("\xed\xa0\x80"), "\\xed\\xa0\\x80");                 // a surrogate
  EXPECT_EQ(escape_for_log(std::string(1000, 'x'), 10), "xxxxxxxxxx... (1000 bytes)");
  EXPECT_EQ(quote_for_log("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(quote_for_log(""), "\"\"");
}

TEST(logging_rate_limit, KeysFoldDigitsAndStopAtTheFirstColon) {
  EXPECT_EQ(LogRateLimiter::key_of("inventory=csv stderr: anything 123"), "inventory=csv stderr");
  EXPECT_EQ(LogRateLimiter::key_of("worker 12 restarted"), "worker # restarted");
  EXPECT_EQ(LogRateLimiter::key_of(std::string(500, 'a')).size(), 64u);
}

// Issue 10 (11): one plug-in wrote 57 MB of log in 30 s.
TEST(logging_rate_limit, AFloodIsCutAndTheDropsAreCounted) {
  LogRateLimiter limiter;
  auto t = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  std::vector<std::string> summaries;
  int written = 0;
  for (int i = 0; i < 100'000; ++i)
    written += limiter.admit("inventory=bad stderr: garbage " + std::to_string(i), t, &summaries);
  EXPECT_EQ(written, 20);
  EXPECT_TRUE(summaries.empty());
  // Other keys are not affected.
  EXPECT_TRUE(limiter.admit("inventory=good targets=3 (added 3, changed 0, removed 0)", t, &summaries));
  // A second later one more line passes, after the count of what was dropped.
  t += std::chrono::seconds(1);
  EXPECT_TRUE(limiter.admit("inventory=bad stderr: again", t, &summaries));
  EXPECT_THAT(summaries, ElementsAre(HasSubstr("99980 similar line(s) dropped")));
  summaries.clear();
  // A flood that stops is summed up within kSummaryEvery, without a further line of its key.
  for (int i = 0; i < 50; ++i) limiter.admit("inventory=bad stderr: x", t, &summaries);
  t += LogRateLimiter::kSummaryEvery;
  limiter.due_summaries(t, &summaries);
  EXPECT_THAT(summaries,
              ElementsAre(HasSubstr(
                  "50 similar line(s) dropped (more than 20 in a burst or 1/s): inventory=bad stderr")));
}

TEST(logging_rate_limit, DistinctKeysAreBounded) {
  LogRateLimiter limiter;
  const auto t = std::chrono::steady_clock::time_point{};
  std::vector<std::string> summaries;
  for (int i = 0; i < 100'000; ++i)
    limiter.admit("k" + std::string(size_t(i % 60), 'x') + char('a' + i % 26) + std::to_string(i), t,
                  &summaries);
  SUCCEED();  // bounded memory: the table is cleared past kMaxKeys (no timing or size to assert here)
}

}  // namespace
}  // namespace netprobe
