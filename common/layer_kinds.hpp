#pragma once
// The layer kinds of NetworkSpec and the one table that describes each: its spelling, how many
// inputs it reads, which Layer fields (and so which parameters) it has, how its output shape
// follows from its input, what the crosscheck calls its output, whether its arithmetic is exact on
// integers, and the crosscheck tolerance of the layer alone. Printing (describe, checkpoint
// metadata, crosscheck tags), NetworkSpec::validate and params(), SpecBuilder::layer, the
// crosscheck registry and its tolerance lookup all read this table; adding a kind is one enum
// value, one list entry and one row here, then its compute in each backend (docs/add-a-layer.md).
#include <array>
#include <cstddef>
#include <string_view>

#include "common/tolerances.hpp"

namespace wdlab {

enum class LayerKind { dense, conv2d, batchnorm, relu, maxpool, global_avgpool, flatten, residual_add, tanh };
/// Every LayerKind, in declaration order (the crosscheck registry and tests loop over it).
inline constexpr std::array<LayerKind, 9> all_layer_kinds{
    LayerKind::dense,   LayerKind::conv2d,         LayerKind::batchnorm, LayerKind::relu,
    LayerKind::maxpool, LayerKind::global_avgpool, LayerKind::flatten,   LayerKind::residual_add,
    LayerKind::tanh};
static_assert(all_layer_kinds.size() == std::size_t(LayerKind::tanh) + 1,
              "all_layer_kinds must list every LayerKind (and name the last one here)");

/// The members of Layer a kind reads beyond kind/name/inputs/in/out. They decide its parameters
/// (NetworkSpec::params) and the fields the checkpoint metadata records for it.
enum class LayerFields {
  none,       // no attributes, no parameters
  dense,      // bias; parameters weight [out, in] (+ bias [out])
  conv2d,     // bias, kernel, stride, pad; parameters weight [K, C, R, S] (+ bias [K])
  window,     // kernel (window), stride; no parameters
  batchnorm,  // affine, bn_eps, bn_momentum; running_mean/var (+ weight, bias with affine)
};

/// How the output shape follows from the input shape C×H×W.
enum class ShapeRule {
  same,        // C×H×W (elementwise, joins)
  channels,    // C×1×1 (a reduction over the map)
  flat,        // (C·H·W)×1×1
  attributes,  // from the kind's fields (dense out, conv/pool geometry): a SpecBuilder method each
};

/// What the crosscheck calls the layer's output (its Quantity and the "pre/bn/act" tag).
enum class LayerOutput { preactivation, normalized, activation };

/// integer: with integer inputs, weights and cotangents every value the layer forms is an exact
/// integer (sums, maxima, copies, division by a power of two), so the exact-mode crosscheck has a
/// case of it and the direct side (apps/crosscheck/side_direct.cpp) computes it. real: not
/// (square roots, transcendental functions).
enum class Arithmetic { integer, real };

struct LayerKindInfo {
  LayerKind kind;
  std::string_view name;  // the one spelling: describe(), checkpoint metadata, crosscheck names
  int inputs;             // 1, or 2 for a join (residual_add)
  LayerFields fields;
  ShapeRule shape;
  LayerOutput output;
  Arithmetic arithmetic;
  tol::Kind float32_alone;  // crosscheck: the layer alone, a float32 side against double
};

/// The table: one row per kind. A switch without default, so -Wswitch names a kind without a row;
/// every_layer_kind_has_its_row() below checks that each row describes its own kind.
constexpr LayerKindInfo layer_info(LayerKind k) {
  using F = LayerFields;
  using S = ShapeRule;
  using O = LayerOutput;
  using A = Arithmetic;
  constexpr tol::Kind op = tol::Kind::float32_op;
  switch (k) {
    case LayerKind::dense: return {k, "dense", 1, F::dense, S::attributes, O::preactivation, A::integer, op};
    case LayerKind::conv2d: return {k, "conv2d", 1, F::conv2d, S::attributes, O::preactivation, A::integer, op};
    case LayerKind::batchnorm: return {k, "batchnorm", 1, F::batchnorm, S::same, O::normalized, A::real, op};
    case LayerKind::relu: return {k, "relu", 1, F::none, S::same, O::activation, A::integer, op};
    case LayerKind::maxpool: return {k, "maxpool", 1, F::window, S::attributes, O::activation, A::integer, op};
    case LayerKind::global_avgpool: return {k, "global_avgpool", 1, F::none, S::channels, O::activation, A::integer, op};
    case LayerKind::flatten: return {k, "flatten", 1, F::none, S::flat, O::activation, A::integer, op};
    case LayerKind::residual_add: return {k, "residual_add", 2, F::none, S::same, O::activation, A::integer, op};
    case LayerKind::tanh: return {k, "tanh", 1, F::none, S::same, O::activation, A::real, op};
  }
  return {k, "?", 0, F::none, S::same, O::activation, A::real, op};  // not a LayerKind (a cast integer)
}

constexpr bool every_layer_kind_has_its_row() {
  for (std::size_t i = 0; i < all_layer_kinds.size(); ++i) {
    const LayerKindInfo r = layer_info(all_layer_kinds[i]);
    if (all_layer_kinds[i] != LayerKind(i) || r.kind != all_layer_kinds[i] || r.name == "?" ||
        (r.inputs != 1 && r.inputs != 2))
      return false;
    // An attribute-free kind has a shape rule SpecBuilder::layer can apply on its own.
    if (r.fields == LayerFields::none && r.shape == ShapeRule::attributes) return false;
    for (std::size_t j = 0; j < i; ++j)
      if (layer_info(all_layer_kinds[j]).name == r.name) return false;
  }
  return true;
}
static_assert(every_layer_kind_has_its_row(),
              "layer_info must give every LayerKind its own row, in all_layer_kinds' order, with a unique name");

}  // namespace wdlab
