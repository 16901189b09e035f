// Philox-4x32-10 against the Random123 known-answer vectors, the derived draws' distributions,
// and the comparison evidence helper.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "common/compare.hpp"
#include "common/philox.hpp"

using namespace wdlab;

TEST_CASE("philox4x32_10 matches the Random123 known-answer vectors") {
  struct Kat {
    rng::Block ctr;
    std::uint32_t k0, k1;
    rng::Block want;
  };
  // Random123's kat_vectors, "philox4x32 10" lines: counter, key, expected output.
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, 0xffffffff, 0xffffffff,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, 0xa4093822, 0x299f31d0,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const auto& k : kats) {
    const rng::Block got = rng::philox4x32_10(k.ctr, k.k0, k.k1);
    for (int i = 0; i < 4; ++i) CHECK(got.v[i] == k.want.v[i]);
  }
}

TEST_CASE("draws depend on every key part and have the right moments") {
  const double base = rng::uniform(7, rng::Purpose::init, 3, 11);
  CHECK(rng::uniform(8, rng::Purpose::init, 3, 11) != base);
  CHECK(rng::uniform(7, rng::Purpose::augment, 3, 11) != base);
  CHECK(rng::uniform(7, rng::Purpose::init, 4, 11) != base);
  CHECK(rng::uniform(7, rng::Purpose::init, 3, 12) != base);
  CHECK(rng::uniform(7, rng::Purpose::init, 3, 11) == base);  // counter-based: no state
  // The high half of a 64-bit step must matter too (resume of very long runs).
  CHECK(rng::uniform(7, rng::Purpose::init, 3 + (std::uint64_t(1) << 32), 11) != base);
  const int n = 200000;
  double su = 0, su2 = 0, sn = 0, sn2 = 0;
  std::vector<int> bins(10, 0);
  for (int i = 0; i < n; ++i) {
    const double u = rng::uniform(1, rng::Purpose::synthetic, 0, i);
    const double z = rng::normal(1, rng::Purpose::synthetic, 1, i);
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    REQUIRE(std::isfinite(z));
    su += u;
    su2 += u * u;
    sn += z;
    sn2 += z * z;
    ++bins[rng::below(1, rng::Purpose::synthetic, 2, i, 10)];
  }
  // 5-sigma bounds: the standard errors are 1/sqrt(12 n), 1/sqrt(n) and sqrt(2/n).
  CHECK(std::abs(su / n - 0.5) < 5 / std::sqrt(12.0 * n));
  CHECK(std::abs(su2 / n - 1.0 / 3) < 5 * 0.3 / std::sqrt(double(n)));
  CHECK(std::abs(sn / n) < 5 / std::sqrt(double(n)));
  CHECK(std::abs(sn2 / n - 1) < 5 * std::sqrt(2.0 / n));
  for (int b : bins) CHECK(std::abs(b - n / 10) < 5 * std::sqrt(n * 0.1 * 0.9));
}

TEST_CASE("compare reports relative Frobenius error, the worst element and non-finite values") {
  const std::vector<double> ref{1, 2, 3, 4}, same{1, 2, 3, 4}, off{1, 2, 3.5, 4};
  const auto a = compare("same", same, ref, tol::Kind::exact_double);
  CHECK(a.pass);
  CHECK(a.rel_fro == 0);
  CHECK(std::isinf(a.margin()));
  const auto b = compare("off", off, ref, tol::Kind::exact_double);
  CHECK_FALSE(b.pass);
  CHECK(b.argmax == 2);
  CHECK(b.max_abs == doctest::Approx(0.5));
  CHECK(b.rel_fro == doctest::Approx(0.5 / std::sqrt(30.0)));
  CHECK(b.line().find("FAIL") != std::string::npos);
  const std::vector<double> nan{1, std::numeric_limits<double>::quiet_NaN(), 3, 4};
  const auto c = compare("nan", nan, ref, 1e9);
  CHECK_FALSE(c.pass);  // a NaN never passes, whatever the tolerance
  CHECK(c.nonfinite == 1);
}

TEST_CASE("WDLAB_HD is defined in one header only (common/hd.hpp)") {
  // Two definitions (common/philox.hpp and cuda/kernels/hd.hpp once) can drift apart; every
  // header-only host/device file includes common/hd.hpp instead. Scans the library sources.
  namespace fs = std::filesystem;
  const fs::path root(WDLAB_SOURCE_DIR);
  std::string defining;  // the files with a definition, space-separated
  std::size_t scanned = 0;
  for (const char* dir : {"common", "cuda", "reference", "theory", "apps"}) {
    if (!fs::exists(root / dir)) continue;
    for (const auto& e : fs::recursive_directory_iterator(root / dir)) {
      const auto ext = e.path().extension().string();
      if (!e.is_regular_file() || (ext != ".hpp" && ext != ".cpp" && ext != ".cu" && ext != ".cuh")) continue;
      ++scanned;
      std::ifstream in(e.path());
      std::stringstream text;
      text << in.rdbuf();
      if (text.str().find("#define WDLAB_HD") != std::string::npos)
        defining += (defining.empty() ? "" : " ") + fs::relative(e.path(), root).generic_string();
    }
  }
  CHECK(scanned > 50);  // the scan saw the source tree
  CHECK(defining == "common/hd.hpp");
}
