#pragma once
// Checkpoints are safetensors files (DESIGN.md, "Decisions"), readable by PyTorch and NumPy tools:
//   u64 little-endian N | N bytes of JSON header, space-padded to a multiple of 8 | data buffer
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the buffer) plus an optional "__metadata__" string→string map. Tensors are
// row-major and little-endian, laid out back to back with no gaps.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wdlab::io {

/// Bytes per element of a supported dtype ("F32", "F64", "I64", "I32", "U8"); nullopt otherwise.
std::optional<std::size_t> dtype_size(std::string_view dtype);

struct Tensor {
  std::string dtype;                // one of the dtypes dtype_size() knows
  std::vector<std::int64_t> shape;  // {} is a 0-d tensor (one element); a 0 dim makes it empty
  std::vector<std::byte> data;      // numel() * dtype_size(dtype) bytes, row-major, little-endian

  static Tensor from_f32(std::vector<std::int64_t> shape, std::span<const float> values);
  static Tensor from_f64(std::vector<std::int64_t> shape, std::span<const double> values);
  static Tensor from_i64(std::vector<std::int64_t> shape, std::span<const std::int64_t> values);

  /// Product of the dims (1 for a 0-d tensor).
  std::int64_t numel() const;

  /// The values, when dtype matches; otherwise DataError("<what>", "dtype is F64, expected F32").
  /// `what` names the tensor in that message (SafetensorsFile passes "file: tensor \"name\"").
  std::vector<float> to_f32(std::string_view what = "tensor") const;
  std::vector<double> to_f64(std::string_view what = "tensor") const;
  std::vector<std::int64_t> to_i64(std::string_view what = "tensor") const;
};

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
  std::string source;  // the file it was read from, for error messages; empty when built in memory

  /// The tensor `name`, or DataError naming the file and the missing tensor.
  const Tensor& at(const std::string& name) const;
  std::vector<float> f32(const std::string& name) const { return at(name).to_f32(what(name)); }
  std::vector<double> f64(const std::string& name) const { return at(name).to_f64(what(name)); }
  std::vector<std::int64_t> i64(const std::string& name) const {
    return at(name).to_i64(what(name));
  }

 private:
  std::string what(const std::string& name) const;
};

/// The file's bytes. Deterministic: tensors in name order in both header and buffer, fixed field
/// order, compact JSON, "__metadata__" first and only when non-empty. A tensor whose data size
/// does not match its shape and dtype, or named "__metadata__", is a bug: InternalError.
std::vector<std::byte> serialize(const SafetensorsFile& file);

/// Strict parse of untrusted bytes: any deviation from the format is a DataError naming
/// `filename_for_errors`, the tensor and field, the byte offset where one applies, and what was
/// expected. Never reads out of bounds, whatever the input.
SafetensorsFile parse(std::span<const std::byte> bytes, const std::string& filename_for_errors);

/// serialize + write_file_atomic.
void save(const std::filesystem::path& path, const SafetensorsFile& file);
/// read_file_bytes + parse; `source` is set to `path`.
SafetensorsFile load(const std::filesystem::path& path);

}  // namespace wdlab::io
