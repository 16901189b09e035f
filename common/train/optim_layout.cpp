#include "common/train/optim_layout.hpp"

#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/errors.hpp"

namespace wdlab::train {

const ParamInfo* state_param(const std::string& name, std::span<const ParamInfo> params) {
  for (const std::string_view prefix : kParamStatePrefixes) {
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string_view rest = std::string_view(name).substr(prefix.size());
    for (const ParamInfo& p : params)
      if (p.name == rest) return &p;
  }
  return nullptr;
}

std::vector<std::int64_t> plain_state_shape(std::int64_t rows, std::int64_t cols) {
  if (rows == 1 && cols == 1) return {};
  if (rows == 1) return {cols};
  return {rows, cols};
}

std::pair<std::int64_t, std::int64_t> plain_state_matrix(const io::Tensor& t, const std::string& name) {
  switch (t.shape.size()) {
    case 0: return {1, 1};
    case 1: return {1, t.shape[0]};
    case 2: return {t.shape[0], t.shape[1]};
    default:
      throw DataError(name, fmt::format("optimizer state of shape [{}], expected a scalar, a vector or a matrix",
                                        fmt::join(t.shape, ", ")));
  }
}

int optim_layout_version(const io::SafetensorsFile& f) {
  const auto it = f.metadata.find(kOptimLayoutKey);
  if (it == f.metadata.end()) return 1;
  if (it->second == "1") return 1;
  if (it->second == "2") return 2;
  throw DataError(f.source, fmt::format("metadata {} is \"{}\", expected 1 or 2 (written by a newer wdlab?)",
                                        kOptimLayoutKey, it->second));
}

void mark_optim_layout(io::SafetensorsFile& f) { f.metadata[kOptimLayoutKey] = std::to_string(kOptimLayoutVersion); }

void upgrade_optim_layout(io::SafetensorsFile& f, std::span<const ParamInfo> params) {
  if (optim_layout_version(f) == 2) return;
  for (auto& [name, t] : f.tensors) {
    if (name.rfind("optim.", 0) != 0) continue;
    const std::string what = fmt::format("{}: tensor \"{}\" (optim_layout 1)", f.source, name);
    if (t.shape.size() != 2) throw DataError(what, fmt::format("has {} dims, expected 2 ([cols, rows])", t.shape.size()));
    const std::int64_t cols = t.shape[0], rows = t.shape[1];
    const auto elem = io::dtype_size(t.dtype);
    if (!elem) throw DataError(what, fmt::format("dtype {} is not optimizer state", t.dtype));
    // v1: data[c·rows + r] = M(r, c) (column-major);  v2: data[r·cols + c] = M(r, c) (row-major).
    std::vector<std::byte> d(t.data.size());
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c)
        std::memcpy(d.data() + std::size_t(r * cols + c) * *elem, t.data.data() + std::size_t(c * rows + r) * *elem,
                    *elem);
    t.data = std::move(d);
    if (const ParamInfo* p = state_param(name, params)) {
      if (p->numel() != rows * cols)
        throw DataError(what, fmt::format("holds {} values, parameter {} has {}", rows * cols, p->name, p->numel()));
      t.shape = p->shape;
    } else {
      t.shape = plain_state_shape(rows, cols);
    }
  }
  mark_optim_layout(f);
}

}  // namespace wdlab::train
