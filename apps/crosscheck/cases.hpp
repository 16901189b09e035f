#pragma once
// The one registry of crosscheck cases (ggml's test-backend-ops): every layer kind alone over a
// set of geometries (odd sizes, stride 2, padding 0/1, 1×1 and 3×3, batch 1), the losses, whole
// networks (MLP, VGG16, ResNet32×4, ± BN) and N optimizer steps (SGD, Adam, K-FAC-F, K-FAC-G).
// A case is plain data; the inputs come from case_data.hpp, the same for every side.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/network_spec.hpp"
#include "common/optim/optim_config.hpp"

namespace wdlab::xcheck {

enum class CaseKind {
  layer,      // one layer kind alone: spec = [layer, flatten], a fixed random output cotangent
  loss,       // softmax cross-entropy or squared error on random outputs
  network,    // one forward/backward pass of a whole network, K-FAC statistics, metrics
  optimizer,  // N optimizer steps on a whole network (different batch each step)
};
enum class InputKind {
  gaussian,       // N(0,1) inputs, Glorot weights, all rounded to float32 (both sides see them)
  small_integer,  // integers in [-8, 7] for inputs, weights and cotangents (exact mode)
};
enum class LossKind { softmax_cross_entropy, squared_error };

// Every value of each enum, in declaration order: the registry, --coverage and the tests loop over
// these lists, never over a copy; the count is checked against the last value.
inline constexpr std::array<CaseKind, 4> all_case_kinds{CaseKind::layer, CaseKind::loss, CaseKind::network,
                                                         CaseKind::optimizer};
static_assert(all_case_kinds.size() == std::size_t(CaseKind::optimizer) + 1, "all_case_kinds must list every CaseKind");
inline constexpr std::array<InputKind, 2> all_input_kinds{InputKind::gaussian, InputKind::small_integer};
static_assert(all_input_kinds.size() == std::size_t(InputKind::small_integer) + 1,
              "all_input_kinds must list every InputKind");
inline constexpr std::array<LossKind, 2> all_loss_kinds{LossKind::softmax_cross_entropy, LossKind::squared_error};
static_assert(all_loss_kinds.size() == std::size_t(LossKind::squared_error) + 1, "all_loss_kinds must list every LossKind");

std::string to_string(CaseKind k);
std::string to_string(InputKind k);
std::string to_string(LossKind k);

struct Case {
  std::string name;  // unique, printable: "conv2d 3x3 s2 p1 C4 9x8 K6 N3 nobias"
  CaseKind kind = CaseKind::layer;
  NetworkSpec spec;                         // layer/network/optimizer cases
  LayerKind layer = LayerKind::relu;        // layer cases: the kind under test (spec.layers[0])
  LossKind loss = LossKind::softmax_cross_entropy;  // loss cases
  int loss_classes = 10;                    // loss cases: K
  int batch = 2;
  InputKind input = InputKind::gaussian;
  optim::OptimConfig optim;  // optimizer cases (K-FAC: T_cov = T_inv = 1, data-pass init)
  int steps = 0;           // optimizer cases
  double lr = 0.01;        // optimizer cases; also η of the effective-learning-rate metric
  std::uint64_t seed = 1;
};

/// What to put into the registry. Sizes of whole networks can be scaled down for CPU runs.
struct Selection {
  bool layers = false;                  // every layer kind alone, and the losses
  std::vector<std::string> networks;    // network passes (names from network_names())
  std::vector<std::string> optimizers;  // optimizer cases on `networks` ("sgd", "adam", "kfac-f", "kfac-g")
  InputKind input = InputKind::gaussian;  // small_integer: the exact layer cases only
  double width_mult = 1.0;              // whole networks: channels/widths scaled
  int batch = 0;                        // whole networks: 0 = the default (8)
  int steps = 1;                        // optimizer cases
  std::uint64_t seed = 1;
};

/// mlp, mlp-bn, convnet-bn, vgg16, vgg16-bn, resnet32x4, resnet32x4-bn
std::vector<std::string> network_names();
/// sgd, adam, kfac-f, kfac-g
std::vector<std::string> optimizer_names();
/// The spec of a named network (CIFAR shapes 3×32×32 for VGG/ResNet, 1×28×28 for the MLP and
/// the convnet), widths scaled by width_mult. `bn_bias`: biases of the "-bn" variants (on: the
/// official configs, what bench times; off: what the crosscheck compares, because the gradient
/// of a bias followed by BN is zero up to rounding, and Adam turns that noise into steps of
/// size η in either precision: no two backends can agree on those tensors).
/// UsageError on an unknown name.
NetworkSpec network_spec(const std::string& name, double width_mult, Bias bn_bias = Bias::on);

/// The optimizer settings of an optimizer case: momentum 0.9, decoupled weight decay 1e-2 on
/// every tensor; K-FAC with damping 1e-2, T_cov = T_inv = 1 (every step takes statistics and
/// inverts), the data-pass factor initialization on the first batch, KL clip 1e-2; Adam with
/// ε = 1e-4. η = 1e-2 for SGD, 1e-3 for Adam and K-FAC. Chosen so that float32 rounding is not
/// amplified (1/λ, sign of noise-level gradients) far above what a real bug changes.
optim::OptimConfig crosscheck_optim(optim::OptimizerKind kind);

/// The cases of a selection, in a fixed order; UsageError on unknown names.
std::vector<Case> registry(const Selection& sel);

/// Layer kinds whose exact-mode case exists: integer arithmetic only (layer_info(k).arithmetic;
/// no BN: it divides by a square root), and the geometries exercise odd sizes, stride and padding.
bool exact_capable(LayerKind k);
/// Exact mode: a bound on the magnitude of every integer sum a layer case forms (inputs,
/// weights and cotangents in [−8, 7], so each product ≤ 64): 64·(longest sum + 1). Below 2²⁴
/// every partial sum, in any order, is an integer float32 holds exactly, so a float32 side
/// (reference-float, cuda) must match the double oracle bit for bit too, except the K-FAC
/// factors, which divide by N·T.
double integer_sum_bound(const Case& c);
inline constexpr double kFloat32ExactIntegers = 16777216.0;  // 2²⁴

/// `--coverage`: for every layer kind, loss, optimizer and mechanism metric, how many cases of
/// `cases` compare it, and "NO CASE" lines for those with none. Returns printable lines.
std::vector<std::string> coverage(const std::vector<Case>& cases);

/// Mechanism metrics the crosscheck compares (metric names in the side's tensors), and those it
/// does not yet (listed by --coverage as uncovered, with the reason).
struct MetricInfo {
  std::string name;
  std::string why_not;  // empty when compared
};
std::vector<MetricInfo> metric_catalog();

}  // namespace wdlab::xcheck
