#include "control/duration.hpp"

#include <gtest/gtest.h>
#include <string_view>

namespace llmgate::control {
namespace {

std::int64_t ms(std::string_view text) {
  const auto d = parse_duration(text);
  if (!d) {
    ADD_FAILURE() << "refused: '" << text << "'";
    return -1;
  }
  return d->count();
}

TEST(parse_duration, reads_every_unit) {
  EXPECT_EQ(ms("250ms"), 250);
  EXPECT_EQ(ms("5s"), 5'000);
  EXPECT_EQ(ms("10m"), 600'000);
  EXPECT_EQ(ms("1h"), 3'600'000);
  EXPECT_EQ(ms("2d"), 172'800'000);
  EXPECT_EQ(ms("0s"), 0);
}

TEST(parse_duration, reads_fractions_and_spaces) {
  EXPECT_EQ(ms("1.5s"), 1'500);
  EXPECT_EQ(ms("0.25m"), 15'000);
  EXPECT_EQ(ms(" 5s "), 5'000);
}

TEST(parse_duration, refuses_a_number_without_unit_and_garbage) {
  for (const std::string_view text : {"5", "abc", "", "5x", "s", "-5s", "1..5s", "5 sec", "ms"})
    EXPECT_FALSE(parse_duration(text).has_value()) << "'" << text << "'";
}

TEST(parse_duration, refuses_absurdly_long_durations) { EXPECT_FALSE(parse_duration("100000d").has_value()); }

TEST(parse_size, reads_units) {
  EXPECT_EQ(parse_size("65536"), 65536u);
  EXPECT_EQ(parse_size("10B"), 10u);
  EXPECT_EQ(parse_size("64KiB"), 65536u);
  EXPECT_EQ(parse_size("1.5KiB"), 1536u);
  EXPECT_EQ(parse_size("8MiB"), 8u * 1024 * 1024);
  EXPECT_EQ(parse_size("1GiB"), 1024u * 1024 * 1024);
  EXPECT_EQ(parse_size("2kB"), 2000u);
  EXPECT_EQ(parse_size("2KB"), 2000u);
  EXPECT_EQ(parse_size("3MB"), 3'000'000u);
  EXPECT_EQ(parse_size("1GB"), 1'000'000'000u);
}

TEST(parse_size, refuses_garbage) {
  for (const std::string_view text : {"abc", "", "5XB", "KiB", "-1", "1e3"})
    EXPECT_FALSE(parse_size(text).has_value()) << "'" << text << "'";
}

TEST(format_duration, picks_the_largest_exact_unit) {
  EXPECT_EQ(format_duration(duration(1'500)), "1500ms");
  EXPECT_EQ(format_duration(duration(5'000)), "5s");
  EXPECT_EQ(format_duration(duration(90'000)), "90s");
  EXPECT_EQ(format_duration(duration(600'000)), "10m");
}

TEST(format_duration, round_trips_through_parse) {
  for (const std::int64_t v : {250, 1'500, 5'000, 90'000, 600'000, 3'600'000}) {
    const auto back = parse_duration(format_duration(duration(v)));
    ASSERT_TRUE(back.has_value()) << v;
    EXPECT_EQ(back->count(), v);
  }
}

std::int64_t timeout_ms(std::string_view text) {
  const auto d = parse_timeout_seconds(text);
  if (!d) {
    ADD_FAILURE() << "refused: '" << text << "'";
    return -1;
  }
  return d->count();
}

TEST(parse_timeout_seconds, reads_seconds_as_clients_send_them) {
  EXPECT_EQ(timeout_ms("2.5"), 2'500);   // x-request-timeout
  EXPECT_EQ(timeout_ms("600"), 600'000); // x-stainless-timeout
  EXPECT_EQ(timeout_ms(" 30 "), 30'000);
  EXPECT_EQ(timeout_ms("0.25"), 250);
  EXPECT_EQ(timeout_ms("86400"), 86'400'000); // a day is the longest
}

TEST(parse_timeout_seconds, whole_milliseconds_are_not_rounded_up_by_binary_noise) {
  EXPECT_EQ(timeout_ms("2.007"), 2'007);
  EXPECT_EQ(timeout_ms("0.3"), 300);
  EXPECT_EQ(timeout_ms("2.0071"), 2'008); // a part of a millisecond still rounds up
}

TEST(parse_timeout_seconds, rounds_under_a_millisecond_up_to_one) {
  EXPECT_EQ(timeout_ms("0.0001"), 1);
  EXPECT_EQ(timeout_ms("0.001"), 1);
}

TEST(parse_timeout_seconds, refuses_what_is_not_a_positive_finite_number_of_seconds) {
  for (const std::string_view text :
       {"", " ", "0", "0.0", "-1", "abc", "1e9", "86401", "nan", "inf", "5s", "2.5 s", "0x10", "1e3", "+5"})
    EXPECT_FALSE(parse_timeout_seconds(text).has_value()) << "'" << text << "'";
}

} // namespace
} // namespace llmgate::control
