#pragma once
// K-FAC's host-side decisions on the CUDA backend, plain C++ (no CUDA header) so the CPU tests
// hold them against the reference (reference/optim/kfac.*, damped_inverse.*): which layers are
// blocks, when a damped factor counts as positive definite, and the checkpoint layouts of the
// K-FAC state. The scalar policy both backends share (when factors and inverses are updated, the
// π-split of the damping, its floor and raise, state names, damping_frac) is
// common/optim/kfac_policy.hpp.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/io/safetensors.hpp"
#include "common/network_spec.hpp"
#include "common/optim/kfac_policy.hpp"
#include "common/optim/optim_config.hpp"

namespace wdlab::cuda {

// The optimizer description and K-FAC's scalar policy are common (common/optim/); the CUDA
// backend names them unqualified.
using optim::FactorInit;
using optim::InverseMethod;
using optim::InversesReady;
using optim::KfacConfig;
using optim::MomentumKind;
using optim::OptimConfig;
using optim::OptimizerKind;
using optim::Regularization;
using optim::SplitDamping;
using optim::damping_fraction;
using optim::kfac_inverses_due;
using optim::kfac_state_name;
using optim::kfac_wants_factors;
using optim::pi_split_damping;
using optim::raised_damping;

/// One Kronecker block: a dense or conv layer with weight tensor w (out × in in the compute
/// layout, in = C·R·S for conv) and optional bias b; A is a × a (a = in + 1 with a bias), S is
/// out × out; T = P·Q output locations for conv, 1 for dense.
/// Which curvature K-FAC's factors estimate: the Fisher (K-FAC-F: targets sampled from the
/// model's predictive distribution) or the Gauss-Newton matrix (K-FAC-G: Gaussian probes).
enum class KfacStatistics { fisher, gauss_newton };

struct KfacBlockLayout {
  int layer = 0;
  std::string name;  // layer name ("features.0")
  int w = -1, b = -1;  // indices into spec.params()
  int out = 0, in = 0;
  int locations = 1;
  int a_dim() const { return in + (b >= 0 ? 1 : 0); }
};

/// The blocks of `spec` in layer order (the reference Kfac's blocks_).
std::vector<KfacBlockLayout> kfac_blocks(const NetworkSpec& spec);

/// Cholesky: F + dI counts as positive definite when min diag(L)² > ε_float·max diag(L)².
bool cholesky_pivots_ok(float min_pivot, float max_pivot);

/// eig: the inverse eigenvalues 1/max(μᵢ + d, d) (float, as the reference's float instance), or
/// nothing when the smallest clipped eigenvalue is not above ε_float times the largest.
std::optional<std::vector<float>> clipped_inverse_eigenvalues(std::span<const float> mu, float d);

/// A factor or inverse (n × n, column-major, as the device holds it) as the reference's state
/// tensor: shape [n, n], row-major (optim_layout 2), i.e. transposed from the device's order.
io::Tensor kfac_matrix_tensor(int n, std::span<const float> column_major);
/// The inverse; DataError naming `name` for a wrong shape or dtype.
std::vector<float> kfac_matrix_values(int n, const io::Tensor& t, const std::string& name);

/// "optim.kfac.damping.<layer>": (λ', π, d_A, d_S) as the reference writes it (shape [4], float).
io::Tensor damping_state_tensor(const SplitDamping& d);
SplitDamping damping_state_values(const io::Tensor& t, const std::string& name);

/// A 0/1 flag entry ("optim.kfac.initialized", "optim.kfac.inverses_ready"); DataError unless
/// it is a 0-d tensor holding 0 or 1.
bool flag_state_value(const io::Tensor& t, const std::string& name);

}  // namespace wdlab::cuda
