// Hostile input: seeded mutations of a valid safetensors file. Every outcome must be a parsed file
// or a DataError — never a crash, an out-of-bounds read (run under WDLAB_SANITIZE to see those),
// or another exception type. Files that still parse must survive a write/read round trip.
#include <random>

#include "common/errors.hpp"
#include "common/io/safetensors.hpp"
#include "tests/common/io_test_util.hpp"

using namespace wdlab;
using namespace wdlab::io;

namespace {

std::vector<std::byte> valid_file() {
  SafetensorsFile f;
  f.tensors["a.weight"] = Tensor::from_f32({2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6});
  f.tensors["b"] = Tensor::from_f64({}, std::vector<double>{0.5});
  f.tensors["c.empty"] = Tensor::from_i64({0, 4}, {});
  f.tensors["d"] = Tensor::from_i64({3}, std::vector<std::int64_t>{-1, 0, 1});
  f.metadata["format"] = "pt";
  return serialize(f);
}

// Mutations aimed where a parser is fragile: the length field, digits and brackets in the header,
// truncation and insertion, besides plain random bytes.
std::vector<std::byte> mutate(std::vector<std::byte> b, std::mt19937_64& rng,
                              std::size_t header_end) {
  auto pick = [&](std::size_t lo, std::size_t hi) {  // uniform in [lo, hi)
    return std::uniform_int_distribution<std::size_t>(lo, hi - 1)(rng);
  };
  const std::string specials = "0123456789[]{}\",:-. \\eE\xff";
  const int rounds = 1 + static_cast<int>(pick(0, 3));
  for (int r = 0; r < rounds && !b.empty(); ++r) {
    switch (pick(0, 7)) {
      case 0:  // flip one bit anywhere
        b[pick(0, b.size())] ^= std::byte{static_cast<unsigned char>(1u << pick(0, 8))};
        break;
      case 1:  // a random byte in the header
        b[pick(0, std::min(header_end, b.size()))] =
            std::byte{static_cast<unsigned char>(pick(0, 256))};
        break;
      case 2:  // a JSON-significant character in the header
        if (b.size() > 8)
          b[pick(8, std::min(header_end, b.size()))] =
              std::byte{static_cast<unsigned char>(specials[pick(0, specials.size())])};
        break;
      case 3:  // truncate
        b.resize(pick(0, b.size()));
        break;
      case 4:  // a byte of the length field
        b[pick(0, std::min<std::size_t>(8, b.size()))] =
            std::byte{static_cast<unsigned char>(pick(0, 256))};
        break;
      case 5:  // insert a byte
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(pick(0, b.size() + 1)),
                 std::byte{static_cast<unsigned char>(specials[pick(0, specials.size())])});
        break;
      default:  // delete a byte
        b.erase(b.begin() + static_cast<std::ptrdiff_t>(pick(0, b.size())));
        break;
    }
  }
  return b;
}

}  // namespace

TEST_CASE("safetensors: 2000 seeded mutations parse or raise DataError, nothing else") {
  const auto base = valid_file();
  REQUIRE_NOTHROW((void)parse(base, "base"));
  std::size_t header_end = 8;
  for (int i = 0; i < 8; ++i) header_end += static_cast<std::size_t>(base[i]) << (8 * i);

  std::mt19937_64 rng(20190101);
  int parsed = 0, rejected = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto bytes = mutate(base, rng, header_end);
    CAPTURE(i);
    try {
      const SafetensorsFile f = parse(bytes, "mutant.safetensors");
      ++parsed;
      // What was accepted must be self-consistent: writing and re-reading it changes nothing.
      const SafetensorsFile g = parse(serialize(f), "again");
      CHECK(g.tensors.size() == f.tensors.size());
      CHECK(serialize(g) == serialize(f));
    } catch (const DataError& e) {
      ++rejected;
      CHECK(std::string(e.what()).rfind("mutant.safetensors: ", 0) == 0);
    }
  }
  MESSAGE("parsed " << parsed << ", rejected " << rejected);
  // Both outcomes must occur, or the loop is not exercising the parser.
  CHECK(parsed > 20);
  CHECK(rejected > 1000);
}
