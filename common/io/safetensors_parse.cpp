// The strict safetensors reader. Input is untrusted (a checkpoint from anywhere): every length and
// offset is checked before use, every product for overflow, and every deviation is reported with
// the tensor, the field, the file byte offset where one applies, and what was expected.
#include <algorithm>
#include <cstring>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/errors.hpp"
#include "common/io/json_strict.hpp"
#include "common/io/safetensors.hpp"

namespace wdlab::io {
namespace {

using json = nlohmann::json;

// The reference implementation's bound; it keeps a corrupt length from asking for 2^64 bytes.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
// Top-level object → tensor entry → shape / data_offsets array.
constexpr int kMaxHeaderDepth = 3;

struct Entry {
  std::string name;
  std::uint64_t begin = 0, end = 0;
};

class Parser {
 public:
  Parser(std::span<const std::byte> bytes, const std::string& file) : bytes_(bytes), file_(file) {}

  SafetensorsFile run() {
    const json header = read_header();
    SafetensorsFile out;
    std::vector<Entry> entries;
    for (const auto& [key, value] : header.items()) {
      if (key == "__metadata__") {
        out.metadata = read_metadata(value);
        continue;
      }
      Entry e{key};
      Tensor t = read_tensor(key, value, e);
      entries.push_back(std::move(e));
      out.tensors.emplace(key, std::move(t));
    }
    check_layout(entries);
    for (const auto& e : entries) {
      auto& data = out.tensors.at(e.name).data;
      data.resize(e.end - e.begin);
      if (!data.empty()) std::memcpy(data.data(), buffer_.data() + e.begin, data.size());
    }
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const { throw DataError(file_, problem); }

  // File byte offset of a buffer offset, for messages.
  std::uint64_t at(std::uint64_t buffer_offset) const { return 8 + header_len_ + buffer_offset; }

  json read_header() {
    if (bytes_.size() < 8)
      fail(fmt::format("{} bytes, too short for the 8-byte header length", bytes_.size()));
    for (int i = 0; i < 8; ++i) header_len_ |= static_cast<std::uint64_t>(bytes_[i]) << (8 * i);
    if (header_len_ > bytes_.size() - 8)
      fail(fmt::format("header length {} (bytes 0-7) exceeds the {} bytes that follow it",
                       header_len_, bytes_.size() - 8));
    if (header_len_ > kMaxHeaderBytes)
      fail(fmt::format("header length {} exceeds the limit of {} bytes", header_len_,
                       kMaxHeaderBytes));
    const std::string_view text(reinterpret_cast<const char*>(bytes_.data()) + 8, header_len_);
    buffer_ = bytes_.subspan(8 + header_len_);
    json header;
    try {
      header = detail::parse_json_strict(text, kMaxHeaderDepth);
    } catch (const detail::JsonSyntaxError& e) {
      if (e.byte == detail::JsonSyntaxError::npos)
        fail(fmt::format("header (bytes 8-{}) is not valid: {}", 8 + header_len_, e.what()));
      fail(fmt::format("header is not valid JSON at byte {}: {}", 8 + e.byte, e.what()));
    }
    if (!header.is_object())
      fail(fmt::format("header is a JSON {}, expected an object of tensors",
                       detail::json_type_name(header)));
    return header;
  }

  std::map<std::string, std::string> read_metadata(const json& value) const {
    if (!value.is_object())
      fail(fmt::format("\"__metadata__\" is a JSON {}, expected an object of strings",
                       detail::json_type_name(value)));
    std::map<std::string, std::string> out;
    for (const auto& [k, v] : value.items()) {
      if (!v.is_string())
        fail(fmt::format("\"__metadata__\".\"{}\" is {} {}, expected a string", k,
                         detail::json_type_name(v), detail::json_excerpt(v)));
      out.emplace(k, v.get<std::string>());
    }
    return out;
  }

  // A non-negative JSON integer, or a message saying what `field` holds instead.
  std::uint64_t read_count(const std::string& name, const std::string& field, const json& v) const {
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    fail(fmt::format("tensor \"{}\": {} is {} {}, expected a non-negative integer", name, field,
                     detail::json_type_name(v), detail::json_excerpt(v)));
  }

  Tensor read_tensor(const std::string& name, const json& value, Entry& e) const {
    if (!value.is_object())
      fail(
          fmt::format("tensor \"{}\" is a JSON {}, expected an object with dtype, shape, "
                      "data_offsets",
                      name, detail::json_type_name(value)));
    for (const auto& [k, v] : value.items()) {
      if (k != "dtype" && k != "shape" && k != "data_offsets")
        fail(
            fmt::format("tensor \"{}\": unexpected field \"{}\" (expected dtype, shape, "
                        "data_offsets)",
                        name, k));
    }
    for (const char* k : {"dtype", "shape", "data_offsets"}) {
      if (!value.contains(k)) fail(fmt::format("tensor \"{}\": missing field \"{}\"", name, k));
    }

    Tensor t;
    const json& dtype = value["dtype"];
    if (!dtype.is_string())
      fail(fmt::format("tensor \"{}\": dtype is {} {}, expected a string", name,
                       detail::json_type_name(dtype), detail::json_excerpt(dtype)));
    t.dtype = dtype.get<std::string>();
    const auto elem = dtype_size(t.dtype);
    if (!elem)
      fail(
          fmt::format("tensor \"{}\": unsupported dtype {}, expected one of F32, F64, I64, I32, U8",
                      name, detail::json_excerpt(dtype)));

    const json& shape = value["shape"];
    if (!shape.is_array())
      fail(fmt::format("tensor \"{}\": shape is {} {}, expected an array of dims", name,
                       detail::json_type_name(shape), detail::json_excerpt(shape)));
    std::uint64_t nbytes = *elem;
    bool overflow = false;
    for (std::size_t i = 0; i < shape.size(); ++i) {
      const std::uint64_t d = read_count(name, fmt::format("shape[{}]", i), shape[i]);
      if (d > static_cast<std::uint64_t>(INT64_MAX))
        fail(fmt::format("tensor \"{}\": shape[{}] = {} does not fit a signed 64-bit dim", name, i,
                         d));
      t.shape.push_back(static_cast<std::int64_t>(d));
      overflow = overflow || __builtin_mul_overflow(nbytes, d, &nbytes);
    }
    // A later 0 dim does not rescue an overflowing prefix: no writer produces such a shape.
    if (overflow)
      fail(fmt::format("tensor \"{}\": shape {} of {} overflows a 64-bit byte count", name,
                       detail::json_excerpt(shape), t.dtype));

    const json& offsets = value["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2)
      fail(fmt::format("tensor \"{}\": data_offsets is {}, expected [begin, end]", name,
                       detail::json_excerpt(offsets)));
    e.begin = read_count(name, "data_offsets[0]", offsets[0]);
    e.end = read_count(name, "data_offsets[1]", offsets[1]);
    if (e.begin > e.end)
      fail(fmt::format("tensor \"{}\": data_offsets [{}, {}] end before they begin", name, e.begin,
                       e.end));
    if (e.end - e.begin != nbytes)
      fail(fmt::format(
          "tensor \"{}\": data_offsets [{}, {}] span {} bytes, but shape {} of {} "
          "needs {} bytes",
          name, e.begin, e.end, e.end - e.begin, detail::json_excerpt(shape), t.dtype, nbytes));
    if (e.end > buffer_.size())
      fail(
          fmt::format("tensor \"{}\": data_offsets [{}, {}] run past the {}-byte data buffer "
                      "(file bytes {}-{}, file size {})",
                      name, e.begin, e.end, buffer_.size(), at(e.begin), at(e.end), bytes_.size()));
    return t;
  }

  // The buffer must be tiled exactly: no gap, no overlap, nothing after the last tensor.
  void check_layout(std::vector<Entry>& entries) const {
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    std::uint64_t cursor = 0;
    const Entry* prev = nullptr;
    for (const auto& e : entries) {
      if (e.begin < cursor)
        fail(
            fmt::format("tensor \"{}\": data_offsets [{}, {}] overlap tensor \"{}\" [{}, {}] "
                        "(file byte {})",
                        e.name, e.begin, e.end, prev->name, prev->begin, prev->end, at(e.begin)));
      if (e.begin > cursor)
        fail(
            fmt::format("gap of {} bytes before tensor \"{}\": buffer bytes [{}, {}) (file byte "
                        "{}) belong to no tensor; expected data_offsets to start at {}",
                        e.begin - cursor, e.name, cursor, e.begin, at(cursor), cursor));
      cursor = e.end;
      prev = &e;
    }
    if (cursor != buffer_.size())
      fail(
          fmt::format("{} trailing bytes after the last tensor (file bytes {}-{}); expected the "
                      "data buffer to end at file byte {}",
                      buffer_.size() - cursor, at(cursor), bytes_.size(), at(cursor)));
  }

  std::span<const std::byte> bytes_;
  const std::string& file_;
  std::uint64_t header_len_ = 0;
  std::span<const std::byte> buffer_;
};

}  // namespace

SafetensorsFile parse(std::span<const std::byte> bytes, const std::string& filename_for_errors) {
  SafetensorsFile f = Parser(bytes, filename_for_errors).run();
  f.source = filename_for_errors;
  return f;
}

}  // namespace wdlab::io
