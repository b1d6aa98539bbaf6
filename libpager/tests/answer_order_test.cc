// The receiving side of answers on lanes (src/dsm/answer_order.h).
#include "dsm/answer_order.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

namespace ssihv::pager::dsm {
namespace {

std::vector<uint8_t> Frame(uint8_t tag) { return {tag, tag, tag}; }

TEST_CASE("AnswerOrder: a frame that follows no untaken answer is handled") {
  AnswerOrder order;
  CHECK(order.AdmitOrPark(0, Frame(1)));
  CHECK(order.Taken(1));
  CHECK(order.AdmitOrPark(1, Frame(2)));
  CHECK(order.parked() == 0);
  CHECK_FALSE(order.StartDrain().has_value());
}

TEST_CASE(
    "AnswerOrder: a frame that overtook an answer waits for it, and "
    "everything behind it waits too") {
  AnswerOrder order;
  CHECK_FALSE(order.AdmitOrPark(2, Frame(1)));  // answers 1 and 2 pending
  CHECK_FALSE(order.AdmitOrPark(0, Frame(2)));  // behind it: FIFO
  CHECK(order.parked() == 2);
  CHECK(order.Taken(2));  // out of order: the watermark stays at 0
  CHECK(order.taken() == 0);
  CHECK_FALSE(order.StartDrain().has_value());
  CHECK(order.Taken(1));
  CHECK(order.taken() == 2);
  auto first = order.StartDrain();
  REQUIRE(first.has_value());
  CHECK(*first == Frame(1));
  // While the drainer handles it, new frames park and no other thread
  // drains, even when the frame behind is ready.
  CHECK_FALSE(order.AdmitOrPark(0, Frame(3)));
  CHECK_FALSE(order.StartDrain().has_value());
  auto second = order.ContinueDrain();
  REQUIRE(second.has_value());
  CHECK(*second == Frame(2));
  auto third = order.ContinueDrain();
  REQUIRE(third.has_value());
  CHECK(*third == Frame(3));
  CHECK_FALSE(order.ContinueDrain().has_value());
  // Drained: frames are admitted directly again.
  CHECK(order.AdmitOrPark(2, Frame(4)));
  CHECK(order.parked_total() == 3);
}

TEST_CASE(
    "AnswerOrder: the drainer stops at a frame that is not ready and "
    "the next Taken picks it up") {
  AnswerOrder order;
  CHECK_FALSE(order.AdmitOrPark(1, Frame(1)));
  CHECK_FALSE(order.AdmitOrPark(2, Frame(2)));
  CHECK(order.Taken(1));
  REQUIRE(order.StartDrain().has_value());
  CHECK_FALSE(order.ContinueDrain().has_value());  // frame 2 waits for 2
  CHECK(order.parked() == 1);
  CHECK(order.Taken(2));
  auto next = order.StartDrain();
  REQUIRE(next.has_value());
  CHECK(*next == Frame(2));
  CHECK_FALSE(order.ContinueDrain().has_value());
}

TEST_CASE("AnswerOrder: an answer number taken twice is refused") {
  AnswerOrder order;
  CHECK(order.Taken(1));
  CHECK_FALSE(order.Taken(1));
  CHECK(order.Taken(3));
  CHECK_FALSE(order.Taken(3));
  CHECK_FALSE(order.Taken(0));
}

TEST_CASE(
    "AnswerOrder: a dead sender's parked frames are dropped and "
    "nothing waits for its answers") {
  AnswerOrder order;
  CHECK_FALSE(order.AdmitOrPark(5, Frame(1)));
  order.SenderDead();
  CHECK(order.parked() == 0);
  CHECK_FALSE(order.StartDrain().has_value());
  CHECK(order.AdmitOrPark(9, Frame(2)));
}

}  // namespace
}  // namespace ssihv::pager::dsm
