// safetensors: round trips, the exact byte layout, and rejection of each malformed class with a
// message that names the file, the tensor/field and the offset.
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/errors.hpp"
#include "common/io/safetensors.hpp"
#include "tests/common/io_test_util.hpp"

using namespace wdlab;
using namespace wdlab::io;
using wdlab::iotest::bytes_of;
using wdlab::iotest::message_of;
using wdlab::iotest::raw_file;

namespace {

SafetensorsFile round_trip(const SafetensorsFile& f) {
  return parse(serialize(f), "rt.safetensors");
}

std::string parse_error(std::string_view header, std::string_view data) {
  return message_of<DataError>([&] { (void)parse(raw_file(header, data), "bad.safetensors"); });
}

}  // namespace

TEST_CASE("safetensors: F32, F64 and I64 round trip bit-exactly, with shapes and metadata") {
  SafetensorsFile f;
  const std::vector<float> w = {1.5f,
                                -0.0f,
                                std::numeric_limits<float>::infinity(),
                                std::numeric_limits<float>::denorm_min(),
                                3e38f,
                                -7.25f};
  const std::vector<double> v = {std::nan("0x5a5a"), 1.0 / 3.0, -1e-300};
  const std::vector<std::int64_t> n = {std::numeric_limits<std::int64_t>::min(), -1, 0,
                                       std::numeric_limits<std::int64_t>::max()};
  f.tensors["features.0.weight"] = Tensor::from_f32({2, 3}, w);
  f.tensors["optim.v"] = Tensor::from_f64({3}, v);
  f.tensors["steps"] = Tensor::from_i64({2, 1, 2}, n);
  f.metadata["format"] = "pt";
  f.metadata["note \"quoted\"\n"] = "λ = 5e-4, β ∈ [0, 1]";

  const SafetensorsFile g = round_trip(f);
  REQUIRE(g.tensors.size() == 3);
  CHECK(g.metadata == f.metadata);
  CHECK(g.source == "rt.safetensors");
  for (const auto& [name, t] : f.tensors) {
    CAPTURE(name);
    REQUIRE(g.tensors.count(name) == 1);
    CHECK(g.tensors.at(name).dtype == t.dtype);
    CHECK(g.tensors.at(name).shape == t.shape);
    CHECK(g.tensors.at(name).data == t.data);  // bytes, so NaN payloads and -0 count too
  }
  const auto w2 = g.f32("features.0.weight");
  REQUIRE(w2.size() == w.size());
  CHECK(std::signbit(w2[1]));
  CHECK(w2[3] == std::numeric_limits<float>::denorm_min());
  CHECK(std::bit_cast<std::uint64_t>(g.f64("optim.v")[0]) == std::bit_cast<std::uint64_t>(v[0]));
  CHECK(g.i64("steps") == n);
  // Writing what was read gives the same bytes.
  CHECK(serialize(g) == serialize(f));
}

TEST_CASE("safetensors: 0-d, empty and zero-tensor files round trip") {
  SafetensorsFile f;
  const double pi = 3.25;
  f.tensors["scalar"] = Tensor::from_f64({}, std::span<const double>(&pi, 1));
  f.tensors["empty"] = Tensor::from_f32({0}, {});
  f.tensors["empty2d"] = Tensor::from_i64({3, 0}, {});
  const SafetensorsFile g = round_trip(f);
  CHECK(g.tensors.at("scalar").shape.empty());
  CHECK(g.tensors.at("scalar").numel() == 1);
  CHECK(g.f64("scalar") == std::vector<double>{3.25});
  CHECK(g.tensors.at("empty").shape == std::vector<std::int64_t>{0});
  CHECK(g.tensors.at("empty").data.empty());
  CHECK(g.tensors.at("empty2d").shape == std::vector<std::int64_t>{3, 0});
  CHECK(g.i64("empty2d").empty());

  const SafetensorsFile none;
  const auto bytes = serialize(none);
  CHECK(iotest::string_of(bytes) == iotest::le64(8) + "{}      ");
  const SafetensorsFile back = parse(bytes, "none");
  CHECK(back.tensors.empty());
  CHECK(back.metadata.empty());
}

TEST_CASE("safetensors: the writer's bytes match a hand-built file exactly") {
  SafetensorsFile f;
  // Inserted out of order: the header must still list them sorted.
  f.tensors["b"] = Tensor::from_i64({}, std::vector<std::int64_t>{7});
  f.tensors["a"] = Tensor::from_f32({2}, std::vector<float>{1.0f, -2.0f});
  f.metadata["format"] = "pt";

  // 138 bytes of JSON + 6 spaces = 144 = 0x90; the buffer starts 8-byte aligned.
  const std::string header = R"({"__metadata__":{"format":"pt"},)"
                             R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"I64","shape":[],"data_offsets":[8,16]}})"
                             "      ";
  const std::string expected = std::string("\x90\0\0\0\0\0\0\0", 8) + header +
                               std::string(
                                   "\x00\x00\x80\x3f"     // 1.0f
                                   "\x00\x00\x00\xc0"     // -2.0f
                                   "\x07\0\0\0\0\0\0\0",  // int64 7
                                   16);
  REQUIRE(header.size() == 144);
  CHECK(iotest::string_of(serialize(f)) == expected);
  // And the hand-built file reads back as the same content.
  const SafetensorsFile g = parse(bytes_of(expected), "hand.safetensors");
  CHECK(g.f32("a") == std::vector<float>{1.0f, -2.0f});
  CHECK(g.i64("b") == std::vector<std::int64_t>{7});
  CHECK(g.metadata == f.metadata);
}

TEST_CASE("safetensors: save and load through a file") {
  iotest::TempDir dir;
  SafetensorsFile f;
  f.tensors["x"] = Tensor::from_f32({2, 2}, std::vector<float>{1, 2, 3, 4});
  save(dir / "ckpt.safetensors", f);
  const SafetensorsFile g = load(dir / "ckpt.safetensors");
  CHECK(g.source == (dir / "ckpt.safetensors").string());
  CHECK(g.f32("x") == std::vector<float>{1, 2, 3, 4});
  const auto missing = message_of<DataError>([&] { (void)load(dir / "nope.safetensors"); });
  CHECK(missing.find("nope.safetensors: cannot open") != std::string::npos);
}

TEST_CASE("safetensors: typed access checks dtype and presence") {
  SafetensorsFile f;
  f.tensors["x"] = Tensor::from_f64({1}, std::vector<double>{1});
  const SafetensorsFile g = round_trip(f);
  CHECK(message_of<DataError>([&] { (void)g.f32("x"); }) ==
        "rt.safetensors: tensor \"x\": dtype is F64, expected F32");
  CHECK(message_of<DataError>([&] { (void)g.i64("x"); }).find("expected I64") != std::string::npos);
  CHECK(message_of<DataError>([&] { (void)g.at("y"); }).find("no tensor \"y\"") !=
        std::string::npos);
}

TEST_CASE("safetensors: the writer refuses inconsistent tensors as bugs") {
  SafetensorsFile f;
  f.tensors["x"] = Tensor{"F32", {2, 3}, std::vector<std::byte>(20)};
  CHECK(message_of<InternalError>([&] { (void)serialize(f); }).find("needs 24") !=
        std::string::npos);
  f.tensors["x"] = Tensor{"F16", {1}, std::vector<std::byte>(2)};
  CHECK(message_of<InternalError>([&] { (void)serialize(f); }).find("unknown dtype") !=
        std::string::npos);
  f.tensors.clear();
  f.tensors["__metadata__"] = Tensor::from_f32({}, std::vector<float>{0});
  CHECK_THROWS_AS((void)serialize(f), InternalError);
  CHECK_THROWS_AS((void)Tensor::from_f32({2, 2}, std::vector<float>{1, 2, 3}), InternalError);
}

// --- malformed files: one case per class -------------------------------------------------------

TEST_CASE("safetensors: file shorter than the header length field") {
  const auto m = message_of<DataError>(
      [] { (void)parse(bytes_of(std::string_view("\x08\0\0", 3)), "bad.st"); });
  CHECK(m == "bad.st: 3 bytes, too short for the 8-byte header length");
}

TEST_CASE("safetensors: header length larger than the file") {
  const auto bytes = bytes_of(iotest::le64(1000) + "{}");
  const auto m = message_of<DataError>([&] { (void)parse(bytes, "bad.st"); });
  CHECK(m == "bad.st: header length 1000 (bytes 0-7) exceeds the 2 bytes that follow it");
  const auto huge = bytes_of(iotest::le64(~0ull) + "{}");
  CHECK(message_of<DataError>([&] { (void)parse(huge, "bad.st"); }).find("exceeds") !=
        std::string::npos);
}

TEST_CASE("safetensors: header length above the 100 MB limit") {
  std::vector<std::byte> bytes(8 + 100'000'008, std::byte{' '});
  const auto len = bytes_of(iotest::le64(100'000'008));
  std::copy(len.begin(), len.end(), bytes.begin());
  CHECK(message_of<DataError>([&] {
          (void)parse(bytes, "bad.st");
        }).find("exceeds the limit of 100000000 bytes") != std::string::npos);
}

TEST_CASE("safetensors: header that is not JSON, with the byte offset") {
  CHECK(parse_error("{x}", "").find("bad.safetensors: header is not valid JSON at byte 9") == 0);
  CHECK(parse_error("", "").find("not valid JSON at byte 8") != std::string::npos);
  CHECK(parse_error("{\"a\":\"\xff\"}", "").find("UTF-8") != std::string::npos);
  CHECK(parse_error("{} {}", "").find("not valid JSON") != std::string::npos);
}

TEST_CASE("safetensors: header that is not an object") {
  CHECK(parse_error("[1,2]", "") ==
        "bad.safetensors: header is a JSON array, expected an object of tensors");
  CHECK(parse_error(R"({"t":[1]})", "").find("tensor \"t\" is a JSON array") != std::string::npos);
  CHECK(parse_error(R"({"__metadata__":[]})", "").find("\"__metadata__\" is a JSON array") !=
        std::string::npos);
  CHECK(parse_error(R"({"__metadata__":{"k":3}})", "") ==
        "bad.safetensors: \"__metadata__\".\"k\" is integer 3, expected a string");
}

TEST_CASE("safetensors: nesting deeper than the format allows") {
  CHECK(parse_error(R"({"t":{"dtype":"U8","shape":[[1]],"data_offsets":[0,1]}})", "x")
            .find("nesting deeper than 3") != std::string::npos);
}

TEST_CASE("safetensors: duplicate tensor names") {
  const auto m = parse_error(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                             R"("t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                             "x");
  CHECK(m.find("duplicate key \"t\"") != std::string::npos);
}

TEST_CASE("safetensors: missing, unexpected and mistyped fields") {
  CHECK(parse_error(R"({"t":{"dtype":"U8","shape":[1]}})", "x") ==
        "bad.safetensors: tensor \"t\": missing field \"data_offsets\"");
  CHECK(parse_error(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}})", "x")
            .find("tensor \"t\": unexpected field \"x\"") != std::string::npos);
  CHECK(parse_error(R"({"t":{"dtype":8,"shape":[1],"data_offsets":[0,1]}})", "x")
            .find("tensor \"t\": dtype is integer 8, expected a string") != std::string::npos);
  CHECK(parse_error(R"({"t":{"dtype":"U8","shape":1,"data_offsets":[0,1]}})", "x")
            .find("shape is integer 1, expected an array") != std::string::npos);
  CHECK(parse_error(R"({"t":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}})", "x")
            .find("shape[0] is number 1.0, expected a non-negative integer") != std::string::npos);
  CHECK(parse_error(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", "x")
            .find("data_offsets is [0], expected [begin, end]") != std::string::npos);
  CHECK(parse_error(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,"1"]}})", "x")
            .find("data_offsets[1] is string \"1\"") != std::string::npos);
}

TEST_CASE("safetensors: unknown dtype") {
  CHECK(parse_error(R"({"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})", "xx") ==
        "bad.safetensors: tensor \"t\": unsupported dtype \"F16\", expected one of F32, F64, "
        "I64, I32, U8");
}

TEST_CASE("safetensors: negative dims and byte-count overflow") {
  CHECK(parse_error(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", "")
            .find("tensor \"t\": shape[0] is integer -1, expected a non-negative integer") !=
        std::string::npos);
  CHECK(parse_error(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],)"
                    R"("data_offsets":[0,0]}})",
                    "")
            .find("overflows a 64-bit byte count") != std::string::npos);
  CHECK(
      parse_error(R"({"t":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,0]}})", "")
          .find("does not fit a signed 64-bit dim") != std::string::npos);
}

TEST_CASE("safetensors: data_offsets that disagree with the shape") {
  CHECK(parse_error(R"({"t":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})",
                    std::string(20, 'x')) ==
        "bad.safetensors: tensor \"t\": data_offsets [0, 20] span 20 bytes, but shape [2,3] of "
        "F32 needs 24 bytes");
  CHECK(parse_error(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}})", "x")
            .find("data_offsets [1, 0] end before they begin") != std::string::npos);
}

TEST_CASE("safetensors: data_offsets past the end of the file") {
  const std::string h = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const auto m = parse_error(h, "1234");
  const std::string at = std::to_string(8 + h.size());
  CHECK(m ==
        "bad.safetensors: tensor \"t\": data_offsets [0, 8] run past the 4-byte data buffer "
        "(file bytes " +
            at + "-" + std::to_string(8 + h.size() + 8) + ", file size " +
            std::to_string(8 + h.size() + 4) + ")");
}

TEST_CASE("safetensors: overlapping tensors") {
  const auto m = parse_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                             std::string(12, 'x'));
  CHECK(m.find("tensor \"b\": data_offsets [4, 12] overlap tensor \"a\" [0, 8] (file byte") !=
        std::string::npos);
}

TEST_CASE("safetensors: gaps before, between and after tensors") {
  const std::string h1 = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  const auto between = parse_error(h1, std::string(12, 'x'));
  CHECK(between.find("gap of 4 bytes before tensor \"b\": buffer bytes [4, 8) (file byte " +
                     std::to_string(8 + h1.size() + 4) + ")") != std::string::npos);
  const auto before =
      parse_error(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[3,4]}})", "xxxx");
  CHECK(before.find("gap of 3 bytes before tensor \"a\"") != std::string::npos);
  CHECK(before.find("expected data_offsets to start at 0") != std::string::npos);
  const auto after = parse_error(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "xyz");
  CHECK(after.find("2 trailing bytes after the last tensor") != std::string::npos);
}
