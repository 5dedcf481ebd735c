#include "redis/resp.hpp"

#include <gtest/gtest.h>
#include <stdexcept>
#include <string>

namespace llmgate::redis {
namespace {

TEST(resp, commands_are_multi_bulk_with_binary_safe_arguments) {
  EXPECT_EQ(command({"PING"}), "*1\r\n$4\r\nPING\r\n");
  const std::string binary("a\r\nb\0c", 6);
  static constexpr char k_wire[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\na\r\nb\0c\r\n";
  EXPECT_EQ(command({"SET", "k", binary}), std::string(k_wire, sizeof k_wire - 1));
  std::string out = command({"GET", "x"});
  const std::string_view args[] = {"INCRBY", "y", "12"};
  append_command(out, args);
  EXPECT_EQ(out, "*2\r\n$3\r\nGET\r\n$1\r\nx\r\n*3\r\n$6\r\nINCRBY\r\n$1\r\ny\r\n$2\r\n12\r\n");
}

TEST(resp, replies_of_every_kind) {
  decoder d;
  ASSERT_TRUE(d.feed("+OK\r\n-ERR bad\r\n:42\r\n$-1\r\n$5\r\nhello\r\n*3\r\n:1\r\n$1\r\nx\r\n*1\r\n:-7\r\n"));
  auto r = d.next();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->type, reply::kind::status);
  EXPECT_EQ(r->text, "OK");
  r = d.next();
  EXPECT_TRUE(r->is_error());
  EXPECT_EQ(r->text, "ERR bad");
  r = d.next();
  EXPECT_EQ(r->type, reply::kind::integer);
  EXPECT_EQ(r->integer, 42);
  EXPECT_TRUE(d.next()->is_nil());
  EXPECT_EQ(d.next()->text, "hello");
  r = d.next();
  ASSERT_EQ(r->type, reply::kind::array);
  ASSERT_EQ(r->elements.size(), 3u);
  EXPECT_EQ(r->elements[0].integer, 1);
  EXPECT_EQ(r->elements[1].text, "x");
  EXPECT_EQ(r->elements[2].elements.at(0).integer, -7);
  EXPECT_FALSE(d.next());
}

TEST(resp, a_reply_split_anywhere_comes_out_whole_once) {
  const std::string wire = "*2\r\n$5\r\nhello\r\n:123\r\n+PONG\r\n";
  for (std::size_t cut = 1; cut < wire.size(); ++cut) {
    decoder d;
    ASSERT_TRUE(d.feed(wire.substr(0, cut)));
    int got = 0;
    while (auto r = d.next()) ++got;
    ASSERT_TRUE(d.feed(wire.substr(cut)));
    while (auto r = d.next()) ++got;
    EXPECT_EQ(got, 2) << "cut at " << cut;
  }
}

TEST(resp, garbage_is_a_protocol_error) {
  decoder d;
  ASSERT_TRUE(d.feed("?what\r\n"));
  EXPECT_THROW((void)d.next(), std::runtime_error);
}

TEST(resp, an_array_announcing_more_than_a_million_elements_is_refused_before_any_allocation) {
  // fuzz_resp's input: hiredis would have allocated 222,222,220 pointers (1.7 GB), then spent 13 s freeing them.
  for (const std::string wire : {"*0\r\n*0\r\n*0\r\n*222222220\r\n", "*2\r\n:1\r\n*2000000000\r\n"}) {
    decoder d;
    ASSERT_TRUE(d.feed(wire));
    try {
      while (d.next()) {
      }
      ADD_FAILURE() << "taken: " << wire;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("elements"), std::string::npos) << e.what();
    }
  }
  // A big array that is allowed still decodes, nested and with every kind of element.
  std::string wire = "*1\r\n*100000\r\n";
  for (int i = 0; i < 100000; ++i) wire += i % 3 == 0 ? ":7\r\n" : i % 3 == 1 ? "$2\r\nab\r\n" : "$-1\r\n";
  decoder d;
  ASSERT_TRUE(d.feed(wire));
  const auto r = d.next();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->elements.size(), 1u);
  ASSERT_EQ(r->elements[0].elements.size(), 100000u);
  EXPECT_EQ(r->elements[0].elements[99999].integer, 7);
  EXPECT_EQ(r->elements[0].elements[1].text, "ab");
  EXPECT_TRUE(r->elements[0].elements[2].is_nil());
}

} // namespace
} // namespace llmgate::redis
