// Dataset invariants, select(), and the documented content hash.
#include <doctest/doctest.h>

#include "common/data/dataset.hpp"
#include "common/errors.hpp"
#include "tests/common/data_test_util.hpp"

using namespace wdlab;
using namespace wdlab::data;
using namespace wdlab::test;

namespace {

Dataset tiny() {
  Dataset d;
  d.name = "tiny";
  d.channels = 1;
  d.height = 1;
  d.width = 2;
  d.num_classes = 2;
  d.images = {0.0f, 1.0f};
  d.labels = {1};
  return d;
}

}  // namespace

TEST_CASE("content_hash: matches FNV-1a of the documented byte sequence") {
  // Computed independently in Python: FNV-1a 64 over <Q N,C,H,W,K = 1,1,1,2,2>, <f 0.0, 1.0>,
  // <i 1> (little-endian) = 0xfd2ab358f7c61a08.
  CHECK(content_hash(tiny()) == 0xfd2ab358f7c61a08ull);
  CHECK(content_hash_hex(tiny()) == "fd2ab358f7c61a08");
}

TEST_CASE("content_hash: changes with pixels, labels, coarse labels and shape, not the name") {
  const std::uint64_t h = content_hash(tiny());
  Dataset d = tiny();
  d.name = "renamed";
  d.source = "elsewhere";
  CHECK(content_hash(d) == h);
  d = tiny();
  d.images[1] = 0.5f;
  CHECK(content_hash(d) != h);
  d = tiny();
  d.labels[0] = 0;
  CHECK(content_hash(d) != h);
  d = tiny();
  d.coarse_labels = {0};
  CHECK(content_hash(d) != h);
  d = tiny();
  d.height = 2;
  d.width = 1;
  CHECK(content_hash(d) != h);
}

TEST_CASE("validate: a consistent set passes, each inconsistency is named") {
  CHECK_NOTHROW(tiny().validate());
  Dataset d = tiny();
  d.images.push_back(0);
  CHECK_HAS(message_of<DataError>([&] { d.validate(); }), "tiny: 3 image floats, expected");
  d = tiny();
  d.labels[0] = 2;
  CHECK_HAS(message_of<DataError>([&] { d.validate(); }), "example 0: label 2, expected 0..1");
  d = tiny();
  d.coarse_labels = {0, 1};
  CHECK_HAS(message_of<DataError>([&] { d.validate(); }), "2 coarse labels, expected 0 or 1");
  d = tiny();
  d.width = 0;
  CHECK_HAS(message_of<DataError>([&] { d.validate(); }), "expected all positive");
  CHECK(tiny().describe() == "1×1×1×2, 2 classes");
}

TEST_CASE("select: picks examples in the given order, with coarse labels") {
  Dataset d = tiny();
  d.images = {0, 1, 2, 3, 4, 5};
  d.labels = {0, 1, 0};
  d.coarse_labels = {5, 6, 7};
  const std::vector<std::uint32_t> idx{2, 0, 2};
  const Dataset s = select(d, idx, "picked");
  CHECK(s.name == "picked");
  CHECK(s.images == std::vector<float>{4, 5, 0, 1, 4, 5});
  CHECK(s.labels == std::vector<std::int32_t>{0, 0, 0});
  CHECK(s.coarse_labels == std::vector<std::int32_t>{7, 5, 7});
  const std::vector<std::uint32_t> bad{3};
  CHECK_HAS(message_of<UsageError>([&] { select(d, bad, "x"); }), "entry 0 is 3, expected < 3");
}
