#include "openai/sse.hpp"

#include <gtest/gtest.h>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llmgate::openai {
namespace {

using event_list = std::vector<std::pair<std::string, std::string>>; // (event, data)

event_list as_list(const std::vector<sse_event>& events) {
  event_list out;
  for (const auto& e : events) out.emplace_back(e.event, e.data);
  return out;
}

// Each feed's events copied out before the next (their views last until then).
event_list read_pieces(const std::vector<std::string_view>& pieces) {
  sse_reader reader;
  event_list all;
  for (const auto piece : pieces) {
    std::vector<sse_event> events;
    EXPECT_TRUE(reader.feed(piece, events));
    for (auto& e : as_list(events)) all.push_back(std::move(e));
  }
  return all;
}

event_list read_whole(std::string_view bytes) { return read_pieces({bytes}); }

event_list read_by_byte(std::string_view bytes) {
  std::vector<std::string_view> pieces;
  for (std::size_t i = 0; i < bytes.size(); ++i) pieces.push_back(bytes.substr(i, 1));
  return read_pieces(pieces);
}

// Every rule at once: named event, CRLF, multi-line data, a comment-only
// block, "data:" without a space, CR line ends, a trailing LF event.
constexpr std::string_view k_stream = "event: ping\ndata: a\n\n"
                                      "data: {\"x\":1}\r\ndata: second line\r\n\r\n"
                                      ": comment\n\n"
                                      "data:nospace\r\r"
                                      "data: last\n\n";

const event_list k_stream_events = {{"ping", "a"}, {"", "{\"x\":1}\nsecond line"}, {"", "nospace"}, {"", "last"}};

TEST(sse_reader, reads_a_simple_event) { EXPECT_EQ(read_whole("data: hello\n\n"), (event_list{{"", "hello"}})); }

TEST(sse_reader, reads_every_rule_in_one_stream) { EXPECT_EQ(read_whole(k_stream), k_stream_events); }

TEST(sse_reader, same_events_for_any_two_piece_split) {
  for (std::size_t i = 0; i <= k_stream.size(); ++i)
    EXPECT_EQ(read_pieces({k_stream.substr(0, i), k_stream.substr(i)}), k_stream_events) << "split at " << i;
}

TEST(sse_reader, same_events_fed_one_byte_at_a_time) { EXPECT_EQ(read_by_byte(k_stream), k_stream_events); }

TEST(sse_reader, crlf_cr_and_lf_line_ends_are_equivalent) {
  const event_list expected = {{"", "a\nb"}, {"", "c"}};
  EXPECT_EQ(read_whole("data: a\ndata: b\n\ndata: c\n\n"), expected);
  EXPECT_EQ(read_whole("data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"), expected);
  EXPECT_EQ(read_whole("data: a\rdata: b\r\rdata: c\r\r"), expected);
  EXPECT_EQ(read_by_byte("data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"), expected);
  EXPECT_EQ(read_by_byte("data: a\rdata: b\r\rdata: c\r\r"), expected);
}

TEST(sse_reader, multi_line_data_is_joined_with_newlines) {
  EXPECT_EQ(read_whole("data: one\ndata: two\ndata: three\n\n"), (event_list{{"", "one\ntwo\nthree"}}));
  EXPECT_EQ(read_whole("data: one\ndata:\ndata: three\n\n"), (event_list{{"", "one\n\nthree"}}));
}

TEST(sse_reader, comments_are_ignored) {
  EXPECT_TRUE(read_whole(": keep-alive\n\n").empty());
  EXPECT_EQ(read_whole(":x\ndata: y\n: between\n\n"), (event_list{{"", "y"}}));
}

TEST(sse_reader, event_field_names_the_event_until_dispatch) {
  EXPECT_EQ(read_whole("event: error\ndata: {}\n\ndata: z\n\n"), (event_list{{"error", "{}"}, {"", "z"}}));
}

TEST(sse_reader, unknown_fields_are_ignored) {
  EXPECT_EQ(read_whole("id: 7\nretry: 100\ndata: v\nfoo: bar\n\n"), (event_list{{"", "v"}}));
}

TEST(sse_reader, only_one_space_after_colon_is_removed) {
  EXPECT_EQ(read_whole("data:x\n\n"), (event_list{{"", "x"}}));
  EXPECT_EQ(read_whole("data:  x\n\n"), (event_list{{"", " x"}}));
}

TEST(sse_reader, block_without_data_is_not_an_event) {
  EXPECT_TRUE(read_whole("event: ping\n\n").empty());
  EXPECT_TRUE(read_whole("\n\n\n").empty());
}

TEST(sse_reader, has_partial_tracks_incomplete_events) {
  sse_reader reader;
  std::vector<sse_event> events;
  EXPECT_FALSE(reader.has_partial());
  ASSERT_TRUE(reader.feed("da", events));
  EXPECT_TRUE(reader.has_partial());
  ASSERT_TRUE(reader.feed("ta: a\n", events));
  EXPECT_TRUE(reader.has_partial());
  EXPECT_TRUE(events.empty());
  ASSERT_TRUE(reader.feed("\n", events));
  EXPECT_FALSE(reader.has_partial());
  EXPECT_EQ(as_list(events), (event_list{{"", "a"}}));
}

TEST(sse_reader, oversized_single_line_event_is_refused) {
  sse_reader reader(16);
  std::vector<sse_event> events;
  EXPECT_FALSE(reader.feed("data: 0123456789abcdef\n\n", events));
  EXPECT_TRUE(events.empty());
}

TEST(sse_reader, oversized_multi_line_event_is_refused) {
  sse_reader reader(32);
  std::vector<sse_event> events;
  EXPECT_FALSE(reader.feed("data: 0123456789\ndata: 0123456789\ndata: 0123456789\ndata: 0123456789\n\n", events));
}

TEST(sse_reader, limit_is_per_event) {
  sse_reader reader(32);
  std::vector<sse_event> events;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(reader.feed("data: 0123456789\n\n", events)) << "event " << i;
  EXPECT_EQ(events.size(), 10u);
}

// Whether the reader calls these bytes verbatim, and if it does, that
// append_sse writes its events back as exactly these bytes.
bool verbatim(std::string_view bytes) {
  sse_reader reader;
  std::vector<sse_event> events;
  EXPECT_TRUE(reader.feed(bytes, events));
  if (!reader.verbatim()) return false;
  std::string written;
  for (const auto& e : events) append_sse(written, e.data, e.event);
  EXPECT_EQ(written, bytes);
  return true;
}

TEST(sse_reader, bytes_as_append_sse_writes_them_are_verbatim) {
  EXPECT_TRUE(verbatim("data: a\n\n"));
  EXPECT_TRUE(verbatim("data: {\"x\":1}\n\ndata: [DONE]\n\n"));
  EXPECT_TRUE(verbatim("data: \n\n"));
  EXPECT_TRUE(verbatim("data:  two spaces\n\n"));
  EXPECT_TRUE(verbatim(""));
}

TEST(sse_reader, bytes_written_any_other_way_are_not_verbatim) {
  EXPECT_FALSE(verbatim("data: a\r\n\r\n"));
  EXPECT_FALSE(verbatim("data: a\r\r"));
  EXPECT_FALSE(verbatim("data:a\n\n"));
  EXPECT_FALSE(verbatim("data:\n\n"));
  EXPECT_FALSE(verbatim("event: e\ndata: a\n\n"));
  EXPECT_FALSE(verbatim("data: a\ndata: b\n\n"));
  EXPECT_FALSE(verbatim(": keep-alive\n\ndata: a\n\n"));
  EXPECT_FALSE(verbatim("id: 1\ndata: a\n\n"));
  EXPECT_FALSE(verbatim("data: a\n\n\n"));
  EXPECT_FALSE(verbatim("data: a\n\ndata: b\n")); // an event left for the next bytes
  EXPECT_FALSE(verbatim("data: a\n\nda"));
}

TEST(sse_reader, bytes_that_finish_an_earlier_event_are_not_verbatim) {
  sse_reader reader;
  std::vector<sse_event> events;
  ASSERT_TRUE(reader.feed("data: a\n", events));
  EXPECT_FALSE(reader.verbatim());
  ASSERT_TRUE(reader.feed("\ndata: b\n\n", events));
  EXPECT_FALSE(reader.verbatim());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].data, "a"); // kept by the reader when its bytes went
  EXPECT_EQ(events[1].data, "b");
  events.clear();
  ASSERT_TRUE(reader.feed("data: c\n\n", events));
  EXPECT_TRUE(reader.verbatim());
  events.clear();
  ASSERT_TRUE(reader.feed("data: d\r", events));
  ASSERT_TRUE(reader.feed("\ndata: e\n\n", events)); // the LF of the CRLF before
  EXPECT_FALSE(reader.verbatim());
}

TEST(sse_reader, an_event_in_one_piece_is_a_view_of_the_bytes) {
  const std::string bytes = "data: first\n\nevent: named\ndata: second\n\n";
  sse_reader reader;
  std::vector<sse_event> events;
  ASSERT_TRUE(reader.feed(bytes, events));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].data.data(), bytes.data() + 6);
  EXPECT_EQ(events[1].data, "second");
  EXPECT_EQ(events[1].event, "named");
}

TEST(append_sse, writes_the_wire_format) {
  std::string out;
  append_sse(out, "x");
  EXPECT_EQ(out, "data: x\n\n");
  out.clear();
  append_sse(out, "x", "e");
  EXPECT_EQ(out, "event: e\ndata: x\n\n");
  out.clear();
  append_sse(out, "a\nb");
  EXPECT_EQ(out, "data: a\ndata: b\n\n");
}

TEST(append_sse, round_trips_through_the_reader) {
  const event_list sent = {{"", "hello"},
                           {"", ""},
                           {"", "multi\nline\ndata"},
                           {"error", "{\"error\":{\"message\":\"x\"}}"},
                           {"", " leading space"},
                           {"", "trailing newline\n"},
                           {"delta", "\n\n"}};
  std::string wire;
  for (const auto& [event, data] : sent) append_sse(wire, data, event);
  EXPECT_EQ(read_whole(wire), sent);
  EXPECT_EQ(read_by_byte(wire), sent);
}

TEST(append_sse, done_marker_reads_back) { EXPECT_EQ(read_whole(k_sse_done), (event_list{{"", "[DONE]"}})); }

} // namespace
} // namespace llmgate::openai
