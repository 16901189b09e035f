// Strict config reading: syntax errors located by line/column, typed getters whose errors name the
// key path, range checks, unknown keys rejected, and --set overrides.
#include "common/errors.hpp"
#include "common/io/json_config.hpp"
#include "tests/common/io_test_util.hpp"

using namespace wdlab;
using namespace wdlab::io;
using nlohmann::json;
using wdlab::iotest::message_of;

namespace {

std::string usage(auto&& f) { return message_of<UsageError>(f); }

json sample_config() {
  return json::parse(R"({
  "name": "vgg16-kfac",
  "epochs": 200,
  "lr": 0.01,
  "seed": 18446744073709551615,
  "bn": true,
  "optimizer": "kfac-f",
  "milestones": [60, 120, 160],
  "kfac": {"damping": 0.001, "inverse_every": 20}
})");
}

}  // namespace

TEST_CASE("config: file syntax errors give file, line and column") {
  iotest::TempDir dir;
  iotest::write_text(dir / "c.json", "{\n  \"lr\": 0.1,\n  \"wd\": oops\n}\n");
  const auto m = message_of<DataError>([&] { (void)read_json_file(dir / "c.json"); });
  CAPTURE(m);
  CHECK(m.find((dir / "c.json").string() + ": line 3, column 9: ") == 0);
  CHECK(m.find("invalid literal") != std::string::npos);

  iotest::write_text(dir / "dup.json", R"({"kfac": {"damping": 1, "damping": 2}})");
  CHECK(message_of<DataError>([&] {
          (void)read_json_file(dir / "dup.json");
        }).find("duplicate key \"kfac.damping\"") != std::string::npos);
  CHECK(message_of<DataError>([&] {
          (void)read_json_file(dir / "none.json");
        }).find("none.json: cannot open: No such file or directory") != std::string::npos);
  CHECK(message_of<DataError>([&] {
          (void)parse_json_text("[1,\n\"\xc3\"]", "inline");
        }).find("inline: line 2, column") == 0);

  iotest::write_text(dir / "ok.json", R"({"a": {"b": [1, 2]}})");
  CHECK(read_json_file(dir / "ok.json") == json::parse(R"({"a": {"b": [1, 2]}})"));
}

TEST_CASE("config: typed getters read present values and defaults") {
  ConfigReader r(sample_config());
  CHECK(r.require<std::string>("name") == "vgg16-kfac");
  CHECK(r.get<int>("epochs", 1, positive()) == 200);
  CHECK(r.get<double>("lr", 0.1, positive()) == 0.01);
  CHECK(r.get<float>("lr", 0.1f) == 0.01f);
  CHECK(r.require<std::uint64_t>("seed") == 18446744073709551615ull);
  CHECK(r.get<bool>("bn", false));
  CHECK(r.get<double>("weight_decay", 5e-4, non_negative()) == 5e-4);
  CHECK(!r.get_optional<int>("batch_size").has_value());
  CHECK(r.get_enum("optimizer", {"sgd", "adam", "kfac-f", "kfac-g"}, "sgd") == "kfac-f");
  CHECK(r.get_enum("mode", {"l2", "wd"}, "wd") == "wd");
  CHECK(r.get<std::vector<int>>("milestones", {}) == std::vector<int>{60, 120, 160});
  ConfigReader k = r.child("kfac");
  CHECK(k.get<double>("damping", 0.1, in_range(1e-8, 1)) == 0.001);
  CHECK(k.get<std::int64_t>("inverse_every", 1) == 20);
  CHECK(k.path("damping") == "kfac.damping");
  CHECK_NOTHROW(k.finish());
  CHECK_NOTHROW(r.finish());
}

TEST_CASE("config: wrong types name the key path and the offending value") {
  const json c = json::parse(R"({"kfac": {"damping": "abc", "every": 2.5, "on": 1},
                                 "widths": [10, "x"], "name": 3, "sub": 4})");
  ConfigReader r(c);
  ConfigReader k = r.child("kfac");
  CHECK(usage([&] { (void)k.get<double>("damping", 0.1); }) ==
        "kfac.damping: expected a number, got string \"abc\"");
  CHECK(usage([&] { (void)k.get<int>("every", 1); }) ==
        "kfac.every: expected an integer, got number 2.5");
  CHECK(usage([&] { (void)k.get<bool>("on", false); }) ==
        "kfac.on: expected true or false, got integer 1");
  CHECK(usage([&] { (void)r.get<std::vector<int>>("widths", {}); }) ==
        "widths[1]: expected an integer, got string \"x\"");
  CHECK(usage([&] { (void)r.require<std::string>("name"); }) ==
        "name: expected a string, got integer 3");
  CHECK(usage([&] { (void)r.child("sub"); }) == "sub: expected an object, got integer 4");
  CHECK(usage([] { ConfigReader top(json::array()); }) ==
        "config: expected an object, got array []");
}

TEST_CASE("config: range checks and integer limits") {
  const json c = json::parse(
      R"({"lr": -1, "damping": 2, "momentum": 1.0, "n": 3000000000, "seed": -5, "p": 0})");
  ConfigReader r(c);
  CHECK(usage([&] { (void)r.get<double>("lr", 0.1, positive()); }) ==
        "lr: expected a value > 0, got -1");
  CHECK(usage([&] { (void)r.get<double>("damping", 0.1, in_range(0, 1)); }) ==
        "damping: expected a value in [0, 1], got 2");
  CHECK(r.get<double>("momentum", 0, in_range(0, 1)) == 1.0);
  CHECK(usage([&] {
          (void)r.get<double>("momentum", 0, Bounds{.lo = 0, .hi = 1, .hi_open = true});
        }) == "momentum: expected a value in [0, 1), got 1");
  CHECK(usage([&] { (void)r.get<int>("n", 0); }) ==
        "n: 3000000000 is too large (at most 2147483647)");
  CHECK(r.get<std::int64_t>("n", 0) == 3000000000);
  CHECK(usage([&] { (void)r.get<std::uint64_t>("seed", 0); }) ==
        "seed: expected a non-negative integer, got integer -5");
  CHECK(usage([&] { (void)r.get<int>("p", 1, positive()); }) == "p: expected a value > 0, got 0");
  CHECK(r.get<int>("p", 1, non_negative()) == 0);
  CHECK(usage([&] { (void)r.get<int>("p", 1, at_least(1)); }) == "p: expected a value >= 1, got 0");
}

TEST_CASE("config: an integer built in code (signed in nlohmann) reads as unsigned when it is >= 0") {
  // json{{"seed", 7}} holds a signed integer, json::parse("7") an unsigned one: both are 7.
  const json built{{"seed", 7}, {"neg", -7}, {"big", std::int64_t(5000000000)}};
  REQUIRE(built["seed"].is_number_unsigned() == false);
  ConfigReader r(built);
  CHECK(r.get<std::uint64_t>("seed", 0) == 7);
  CHECK(r.get<int>("seed", 0) == 7);
  CHECK(usage([&] { (void)r.get<std::uint64_t>("neg", 0); }) == "neg: expected a non-negative integer, got integer -7");
  CHECK(usage([&] { (void)r.get<int>("big", 0); }) == "big: 5000000000 is too large (at most 2147483647)");
  CHECK(r.get<std::uint64_t>("big", 0) == 5000000000ULL);
}

TEST_CASE("config: enums and required keys") {
  const json c = json::parse(R"({"optimizer": "adamw"})");
  ConfigReader r(c);
  CHECK(usage([&] {
          (void)r.get_enum("optimizer", {"sgd", "adam"}, "sgd");
        }) == "optimizer: expected one of sgd, adam, got \"adamw\"");
  CHECK(usage([&] { (void)r.require<double>("lr"); }) == "lr: required key is missing");
  CHECK(usage([&] {
          (void)r.require_enum("mode", {"l2", "wd"});
        }) == "mode: required key is missing");
}

TEST_CASE("config: unknown keys are errors, with a hint for near misses") {
  const json c =
      json::parse(R"({"lr": 0.1, "kfac": {"dampnig": 0.01, "zzz": 1, "inverse_every": 5}})");
  ConfigReader r(c);
  (void)r.get<double>("lr", 0.1);
  ConfigReader k = r.child("kfac");
  (void)k.get<double>("damping", 0.001);
  (void)k.get<int>("inverse_every", 20);
  const auto m = usage([&] { k.finish(); });
  CHECK(m.find("kfac.dampnig, kfac.zzz: unknown keys") == 0);
  CHECK(m.find("did you mean \"dampnig\" → \"damping\"?") != std::string::npos);
  CHECK(m.find("keys read here: damping, inverse_every") != std::string::npos);
  CHECK_NOTHROW(r.finish());  // "kfac" itself was consumed by child()

  ConfigReader bare(json::parse(R"({"extra": 1})"));
  CHECK(usage([&] { bare.finish(); }) == "extra: unknown key; no keys are read here");
}

TEST_CASE("config: --set overrides parse JSON values, else strings") {
  json c = sample_config();
  apply_override(c, "lr=1e-3");
  apply_override(c, "optimizer=adam");
  apply_override(c, "bn=false");
  apply_override(c, "milestones=[1,2]");
  apply_override(c, "kfac.damping=0.5");
  apply_override(c, "data.root=/tmp/cifar=10");  // only the first '=' splits
  apply_override(c, "name=\"42\"");
  apply_override(c, "note=");
  CHECK(c["lr"] == 1e-3);
  CHECK(c["optimizer"] == "adam");
  CHECK(c["bn"] == false);
  CHECK(c["milestones"] == json::array({1, 2}));
  CHECK(c["kfac"]["damping"] == 0.5);
  CHECK(c["kfac"]["inverse_every"] == 20);  // siblings untouched
  CHECK(c["data"]["root"] == "/tmp/cifar=10");
  CHECK(c["name"] == "42");
  CHECK(c["note"] == "");

  // An override of a key nobody reads is caught by the reader, not silently kept.
  json d = json::parse(R"({"kfac": {"damping": 1}})");
  apply_override(d, "kfac.dampign=2");
  ConfigReader r(d);
  ConfigReader k = r.child("kfac");
  (void)k.get<double>("damping", 0.1);
  CHECK(usage([&] { k.finish(); }).find("kfac.dampign: unknown key") == 0);
}

TEST_CASE("config: malformed overrides name themselves") {
  json c = sample_config();
  CHECK(usage([&] { apply_override(c, "lr"); }) == "--set lr: expected key=value");
  CHECK(usage([&] { apply_override(c, "=1"); }) == "--set =1: empty key segment in \"\"");
  CHECK(usage([&] { apply_override(c, "kfac..damping=1"); }) ==
        "--set kfac..damping=1: empty key segment in \"kfac..damping\"");
  CHECK(usage([&] { apply_override(c, "epochs.x=1"); }) ==
        "--set epochs.x=1: epochs is integer 200, not an object");
  CHECK(usage([&] {
          apply_override(c, "milestones=[1,2");
        }).find("--set milestones=[1,2: value is not valid JSON") == 0);
  json arr = json::array();
  CHECK(usage([&] { apply_override(arr, "a=1"); }) == "--set a=1: the config is not a JSON object");
  CHECK(c == sample_config());  // failed overrides changed nothing
}
