#include "common/io/safetensors.hpp"

#include <bit>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/errors.hpp"
#include "common/io/atomic_file.hpp"
#include "common/io/read_file.hpp"

namespace wdlab::io {

// Tensor bytes are copied to and from host arrays as they are; on a big-endian host they would
// need swapping, which nothing here does.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes little-endian");

std::optional<std::size_t> dtype_size(std::string_view dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "U8") return 1;
  return std::nullopt;
}

namespace {

template <class T>
Tensor from_values(const char* dtype, std::vector<std::int64_t> shape, std::span<const T> values) {
  Tensor t{dtype, std::move(shape), {}};
  for (const auto d : t.shape) WDLAB_CHECK(d >= 0, fmt::format("negative dim {}", d));
  WDLAB_CHECK(static_cast<std::size_t>(t.numel()) == values.size(),
              fmt::format("shape [{}] has {} elements, {} values given", fmt::join(t.shape, ", "),
                          t.numel(), values.size()));
  t.data.resize(values.size_bytes());
  if (!values.empty()) std::memcpy(t.data.data(), values.data(), values.size_bytes());
  return t;
}

template <class T>
std::vector<T> to_values(const Tensor& t, const char* dtype, std::string_view what) {
  if (t.dtype != dtype)
    throw DataError(std::string(what), fmt::format("dtype is {}, expected {}", t.dtype, dtype));
  if (t.data.size() != static_cast<std::size_t>(t.numel()) * sizeof(T))
    throw DataError(std::string(what),
                    fmt::format("holds {} bytes, but shape [{}] of {} needs {}", t.data.size(),
                                fmt::join(t.shape, ", "), dtype, t.numel() * sizeof(T)));
  std::vector<T> out(t.data.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), t.data.data(), t.data.size());
  return out;
}

// JSON string literal, UTF-8 kept as is (as serde_json and Python's
// json.dumps(ensure_ascii=False)).
std::string quoted(const std::string& s, std::string_view what) {
  try {
    return nlohmann::json(s).dump();
  } catch (const nlohmann::json::type_error&) {
    throw InternalError(fmt::format("safetensors: {} is not valid UTF-8", what));
  }
}

}  // namespace

Tensor Tensor::from_f32(std::vector<std::int64_t> shape, std::span<const float> values) {
  return from_values("F32", std::move(shape), values);
}
Tensor Tensor::from_f64(std::vector<std::int64_t> shape, std::span<const double> values) {
  return from_values("F64", std::move(shape), values);
}
Tensor Tensor::from_i64(std::vector<std::int64_t> shape, std::span<const std::int64_t> values) {
  return from_values("I64", std::move(shape), values);
}

std::int64_t Tensor::numel() const {
  std::int64_t n = 1;
  for (const auto d : shape) n *= d;
  return n;
}

std::vector<float> Tensor::to_f32(std::string_view what) const {
  return to_values<float>(*this, "F32", what);
}
std::vector<double> Tensor::to_f64(std::string_view what) const {
  return to_values<double>(*this, "F64", what);
}
std::vector<std::int64_t> Tensor::to_i64(std::string_view what) const {
  return to_values<std::int64_t>(*this, "I64", what);
}

std::string SafetensorsFile::what(const std::string& name) const {
  return fmt::format("{}: tensor \"{}\"", source.empty() ? "<memory>" : source, name);
}

const Tensor& SafetensorsFile::at(const std::string& name) const {
  const auto it = tensors.find(name);
  if (it == tensors.end())
    throw DataError(source.empty() ? "<memory>" : source,
                    fmt::format("no tensor \"{}\" (it holds {} tensors)", name, tensors.size()));
  return it->second;
}

std::vector<std::byte> serialize(const SafetensorsFile& file) {
  std::string header = "{";
  if (!file.metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : file.metadata) {
      if (!first) header += ',';
      first = false;
      header += quoted(k, "metadata key") + ':' + quoted(v, "metadata value of \"" + k + "\"");
    }
    header += '}';
  }
  std::uint64_t offset = 0;
  bool first = file.metadata.empty();
  for (const auto& [name, t] : file.tensors) {
    WDLAB_CHECK(name != "__metadata__", "a tensor may not be named __metadata__");
    const auto size = dtype_size(t.dtype);
    WDLAB_CHECK(size.has_value(),
                fmt::format("tensor \"{}\": unknown dtype \"{}\"", name, t.dtype));
    std::uint64_t need = *size;
    for (const auto d : t.shape) {
      WDLAB_CHECK(d >= 0, fmt::format("tensor \"{}\": negative dim {}", name, d));
      WDLAB_CHECK(!__builtin_mul_overflow(need, static_cast<std::uint64_t>(d), &need),
                  fmt::format("tensor \"{}\": byte count overflows", name));
    }
    WDLAB_CHECK(need == t.data.size(),
                fmt::format("tensor \"{}\": {} bytes of data, shape [{}] of {} needs {}", name,
                            t.data.size(), fmt::join(t.shape, ", "), t.dtype, need));
    if (!first) header += ',';
    first = false;
    header += fmt::format("{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                          quoted(name, "a tensor name"), t.dtype, fmt::join(t.shape, ","), offset,
                          offset + t.data.size());
    offset += t.data.size();
  }
  header += '}';
  // The reference implementation pads with spaces so that the buffer starts 8-byte aligned.
  header.append((8 - header.size() % 8) % 8, ' ');

  std::vector<std::byte> out(8 + header.size() + offset);
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>((n >> (8 * i)) & 0xFF);
  std::memcpy(out.data() + 8, header.data(), header.size());
  std::byte* p = out.data() + 8 + header.size();
  for (const auto& [name, t] : file.tensors) {
    if (!t.data.empty()) std::memcpy(p, t.data.data(), t.data.size());
    p += t.data.size();
  }
  return out;
}

void save(const std::filesystem::path& path, const SafetensorsFile& file) {
  write_file_atomic(path, serialize(file));
}

SafetensorsFile load(const std::filesystem::path& path) {
  SafetensorsFile f = parse(read_file_bytes(path), path.string());
  f.source = path.string();
  return f;
}

}  // namespace wdlab::io
