// Hostile input for every reader of untrusted files: seeded mutations (bit flips, random and
// format-significant bytes, truncation, insertion, duplication) of valid idx (raw and gzip),
// CIFAR and config files. Every outcome must be a parsed value or the documented typed error
// (DataError for files, UsageError for config values) — never a crash, a hang, an out-of-bounds
// access (the suite also runs under ASan/UBSan in CI) or another exception. Each reader gets a
// bounded number of executions and a time budget; the counts are printed.
#include <chrono>
#include <random>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "apps/experiment_config.hpp"
#include "common/data/cifar.hpp"
#include "common/data/idx.hpp"
#include "common/errors.hpp"
#include "common/io/json_config.hpp"
#include "data_test_util.hpp"

using namespace wdlab;
using wdlab::test::Bytes;
namespace fs = std::filesystem;

namespace {

class Mutator {
 public:
  Mutator(std::uint64_t seed, std::string specials) : rng_(seed), specials_(std::move(specials)) {}
  Bytes operator()(Bytes b) {
    const int rounds = 1 + int(pick(0, 4));
    for (int r = 0; r < rounds; ++r) {
      if (b.empty()) {
        b.push_back(std::uint8_t(pick(0, 256)));
        continue;
      }
      switch (pick(0, 8)) {
        case 0: b[pick(0, b.size())] ^= std::uint8_t(1u << pick(0, 8)); break;
        case 1: b[pick(0, std::min<std::size_t>(b.size(), 64))] = std::uint8_t(pick(0, 256)); break;
        case 2: b[pick(0, b.size())] = std::uint8_t(specials_[pick(0, specials_.size())]); break;
        case 3: b.resize(pick(0, b.size())); break;
        case 4: b.insert(b.begin() + std::ptrdiff_t(pick(0, b.size() + 1)), std::uint8_t(pick(0, 256))); break;
        case 5: {  // duplicate a slice (repeated records, doubled headers)
          const std::size_t at = pick(0, b.size()), n = pick(1, std::min<std::size_t>(b.size() - at, 64) + 1);
          b.insert(b.begin() + std::ptrdiff_t(at), b.begin() + std::ptrdiff_t(at), b.begin() + std::ptrdiff_t(at + n));
          break;
        }
        case 6: b[pick(0, b.size())] = 0xff; break;
        default: b.erase(b.begin() + std::ptrdiff_t(pick(0, b.size()))); break;
      }
    }
    return b;
  }
  std::size_t pick(std::size_t lo, std::size_t hi) {  // uniform in [lo, hi)
    return std::uniform_int_distribution<std::size_t>(lo, hi - 1)(rng_);
  }

 private:
  std::mt19937_64 rng_;
  std::string specials_;
};

struct Budget {
  int max_runs;
  std::chrono::steady_clock::time_point end;
  Budget(int runs, double seconds)
      : max_runs(runs), end(std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                                   std::chrono::duration<double>(seconds))) {}
  bool more(int done) const { return done < max_runs && std::chrono::steady_clock::now() < end; }
};

/// Runs `attempt` on mutants of `seed_bytes`; counts accepted inputs and typed rejections and
/// fails on anything else.
template <class Attempt>
void fuzz(const char* what, const Bytes& seed_bytes, std::uint64_t seed, const std::string& specials, Attempt attempt) {
  Mutator mutate(seed, specials);
  const Budget budget(4000, 6.0);
  int runs = 0, accepted = 0, rejected = 0;
  for (; budget.more(runs); ++runs) {
    const Bytes m = mutate(seed_bytes);
    try {
      attempt(m);
      ++accepted;
    } catch (const DataError&) {
      ++rejected;
    } catch (const UsageError&) {
      ++rejected;
    } catch (const std::exception& e) {
      FAIL(what << ": mutant " << runs << " threw an untyped " << typeid(e).name() << ": " << e.what());
    }
  }
  MESSAGE(fmt::format("{}: {} executions, {} accepted, {} rejected with a typed error", what, runs, accepted, rejected));
  CHECK(runs >= 30);  // a floor even on a loaded machine or under ASan
  CHECK(rejected > 0);  // the mutations reach the checks (a fuzzer that only produced valid files would prove nothing)
}

}  // namespace

TEST_CASE("fuzz: idx image and label files, raw and gzip") {
  const test::TempDir dir;
  const fs::path img = dir / "img", lab = dir / "lab";
  const Bytes images = test::idx_images(3, 4, 5);
  const Bytes labels = test::idx_labels({1, 0, 2});
  const std::string specials = std::string("\x00\x08\x03\x01\xff", 5);
  for (const bool gz : {false, true}) {
    CAPTURE(gz);
    const auto write = [&](const fs::path& p, const Bytes& b) { gz ? test::write_gz(p, b) : test::write_raw(p, b); };
    fuzz(gz ? "idx images (gz)" : "idx images", images, 11 + gz, specials, [&](const Bytes& m) {
      write(img, m);
      write(lab, labels);
      const auto d = data::load_idx_pair(img, lab, 10, {}, "fuzz");
      CHECK(d.size() == 3);
    });
    fuzz(gz ? "idx labels (gz)" : "idx labels", labels, 21 + gz, specials, [&](const Bytes& m) {
      write(lab, m);
      (void)data::read_idx_labels(lab);
    });
  }
  // Gzip container bytes themselves (header, deflate stream, CRC trailer) mutated.
  test::write_gz(img, images);
  const Bytes gz_bytes = test::read_raw(img);
  fuzz("idx images, gzip stream bytes", gz_bytes, 31, std::string("\x1f\x8b\x08\x00", 4), [&](const Bytes& m) {
    test::write_raw(img, m);
    (void)data::read_idx_images(img);
  });
}

TEST_CASE("fuzz: CIFAR-10 and CIFAR-100 binary records") {
  const test::TempDir dir;
  const fs::path f = dir / "batch.bin";
  for (const auto v : data::all_cifar_variants) {
    const bool c100 = v == data::CifarVariant::cifar100;
    const Bytes seed_bytes = c100 ? test::cifar_records({{1, 7}, {19, 99}}) : test::cifar_records({{3}, {9}});
    fuzz(c100 ? "cifar100" : "cifar10", seed_bytes, 41 + c100, std::string("\x00\x09\x0a\x63\x64\xff", 6),
         [&](const Bytes& m) {
           test::write_raw(f, m);
           const fs::path files[] = {f};
           const auto d = data::read_cifar_files(files, v, "fuzz");
           CHECK(d.size() * std::size_t(data::cifar_record_bytes(v)) == m.size());
         });
  }
}

TEST_CASE("fuzz: experiment configs (JSON syntax, types, keys, ranges)") {
  const std::string valid = R"({"name": "fz", "dataset": "fashion-mnist", "validation": 100, "train_subset": 512,
    "model": "mlp", "arch": {"depth": 2, "width": 16, "batchnorm": true}, "optimizer": "kfac-g", "lr": 0.01,
    "momentum": 0.9, "regularization": "wd", "weight_decay": 0.0005, "wd_scope": "fc",
    "kfac": {"damping": 0.001, "t_cov": 10, "t_inv": 100, "kl_clip": 0.001},
    "schedule": {"kind": "step_epochs", "gamma": 0.1, "every_epochs": 3}, "epochs": 3, "batch_size": 64,
    "checkpoint": {"every": 1, "keep": 2}, "on_nonfinite": "skip", "divergence_factor": 10})";
  const auto parsed = app::parse_config(io::parse_json_text(valid, "valid"));  // the seed itself is valid
  CHECK(parsed.optim.kind == optim::OptimizerKind::kfac_g);
  const Bytes seed_bytes(valid.begin(), valid.end());
  fuzz("config", seed_bytes, 51, "{}[]\":,0123456789.-eEtfn \\", [&](const Bytes& m) {
    const std::string text(m.begin(), m.end());
    const auto cfg = app::parse_config(io::parse_json_text(text, "fuzz.json"));
    cfg.validate();
  });
}
