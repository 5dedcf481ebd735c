#include "redis/slot.hpp"

#include <gtest/gtest.h>

namespace llmgate::redis {
namespace {

TEST(slot, crc16_xmodem_of_the_specifications_examples) {
  EXPECT_EQ(key_slot("123456789"), 0x31C3); // the CRC16/XMODEM check value, below 16384
  EXPECT_EQ(key_slot("foo"), 12182);        // as CLUSTER KEYSLOT answers
  EXPECT_EQ(key_slot("bar"), 5061);
  EXPECT_EQ(key_slot(""), 0);
}

TEST(slot, a_hash_tag_decides_the_slot) {
  EXPECT_EQ(hash_tag("{user1000}.following"), "user1000");
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("{user1000}.followers"));
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("user1000"));
  EXPECT_EQ(hash_tag("foo{}{bar}"), "foo{}{bar}"); // an empty first tag: the whole key
  EXPECT_EQ(hash_tag("foo{{bar}}zap"), "{bar");    // up to the first '}'
  EXPECT_EQ(hash_tag("foo{bar}{zap}"), "bar");     // only the first tag counts
  EXPECT_EQ(hash_tag("no tag}{"), "no tag}{");
}

} // namespace
} // namespace llmgate::redis
