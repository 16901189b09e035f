#pragma once
// Matrix-free building blocks of the checks (no P×P matrix, no per-parameter Jacobian):
//   forward mode  J v      one JVP over the batch (ref::jvp), K×N
//   reverse mode  J_nᵀ u_n one backward pass with the cotangent U (K×N); without BN the examples
//                 are independent, so the per-example, per-layer pieces of (J_nᵀ u_n)·v are read
//                 off the layer cotangents: (J_nᵀu_n)·v = Σ_l ds_{l,n}ᵀ V_l a_{l−1,n} (+ ds·dv_b).
//                 With BN the examples are coupled through the batch statistics, so each example
//                 gets its own backward pass (cotangent nonzero in its column only).
//   G v           (1/N) Σ_n J_nᵀ (J_n v): a JVP then one backward pass (exact through BN too).
#include <string>
#include <vector>

#include "reference/mlp/curvature.hpp"
#include "theory/problem.hpp"

namespace wdlab::theory {

using Params = ref::MlpParams<double>;
using Forward = ref::MlpForward<double>;

/// J_θ v for every example (forward mode), K×N. The products of ref::jvp, less those with a
/// zero factor (layers below v's first nonzero layer, layers where v is 0).
Mat<double> jvp_theta(const MlpSpec& s, const Params& p, const Forward& fw, const Params& v);

/// Forward mode from layer l up for m directions side by side: D holds the tangents of s_l,
/// out_l × (m·N) (direction j in columns jN..jN+N−1); returns the output tangents K × (m·N). BN
/// projects each direction's block over its own batch; one product per layer serves all m.
Mat<double> propagate_tangents(const MlpSpec& s, const Params& p, const Forward& fw, int l, Mat<double> D);

/// J e_q for every θ index q in idx (all in layer l), as the columns of a (K·N)×|idx| matrix
/// (column j: the K×N JVP of e_{idx[j]}, flattened column-major), by one propagate_tangents.
Mat<double> jvp_columns(const MlpSpec& s, const Params& p, const Forward& fw, int l, const std::vector<int>& idx);

/// Per layer l and example n: (J_{θ_l,n}ᵀ u_n)·v_l by reverse mode, (L+1)×|examples|.
/// `examples` lists the examples (all when empty). Each column of U is one example's cotangent.
Mat<double> reverse_dots(const MlpSpec& s, const Params& p, const Forward& fw, const Mat<double>& U,
                         const Params& v, const std::vector<int>& examples = {});

enum class KeepLayers { all, lowest };
/// Reverse mode for m cotangents side by side: U is K × (m·N) (cotangent j in columns
/// jN..jN+N−1); returns the layer cotangents ds_l (out_l × (m·N)) of the layers >= down_to
/// (lower ones empty; with KeepLayers::lowest only layer down_to's, so that many blocks stay
/// within memory), BN's projection over each block's batch; no weight gradients. The
/// products of ref::backward that the checks need, one product per layer for all m.
std::vector<Mat<double>> layer_cotangents(const MlpSpec& s, const Params& p, const Forward& fw, Mat<double> U,
                                          int down_to = 0, KeepLayers keep = KeepLayers::all);

/// reverse_dots for several directions and many cotangents: the per-direction, per-layer
/// products V_l a_{l−1} are formed once, and each call does the backward pass of one U (with BN
/// one per example, side by side) by layer_cotangents. The references must outlive the object.
class ReverseDots {
 public:
  ReverseDots(const MlpSpec& s, const Params& p, const Forward& fw, const std::vector<Params>& vs,
              const std::vector<int>& examples = {});
  /// One matrix per v, (L+1)×|examples|: (J_{θ_l,n}ᵀ u_n)·v_l.
  std::vector<Mat<double>> operator()(const Mat<double>& U) const;

 private:
  const MlpSpec& s_;
  const Params& p_;
  const Forward& fw_;
  const std::vector<Params>& vs_;
  std::vector<int> ex_;
  std::vector<std::vector<Mat<double>>> va_;  // [direction][layer]: V_l a_{l−1} (+ v_b), no BN
};

/// reverse_dots for several directions from the same backward pass(es): one matrix per v.
std::vector<Mat<double>> reverse_dots_multi(const MlpSpec& s, const Params& p, const Forward& fw,
                                            const Mat<double>& U, const std::vector<Params>& vs,
                                            const std::vector<int>& examples = {});

/// (1/N) Σ_n J_nᵀ J_n v (forward then reverse mode), flattened like θ.
Vec<double> gn_times(const MlpSpec& s, const Params& p, const Forward& fw, const Params& v);
/// (1/N) Σ_n J_nᵀ H_n J_n v with H_n = diag p_n − p_n p_nᵀ (softmax CE Fisher = GGN), flattened.
Vec<double> ggn_times(const MlpSpec& s, const Params& p, const Forward& fw, const Params& v);

/// H_n u_n for every column: p ⊙ u − p (pᵀu).
Mat<double> softmax_hessian_times(const Mat<double>& probs, const Mat<double>& U);

/// A Gaussian direction in parameter space from the theory RNG (step 100 + index), all layers,
/// or only `layer` (others zero) when layer >= 0.
Params random_direction(const MlpSpec& s, std::uint64_t seed, int index, int layer = -1);

/// Parameters with only layer l set to the flattened t (others zero).
Params layer_only(const MlpSpec& s, int layer, const Vec<double>& t);

/// Central differences of φ along unit-scaled directions, with the step chosen from the distance
/// to the nearest ReLU kink (the activation pattern must not change within ±h) and Richardson
/// extrapolation; `err` estimates each derivative's error (truncation + rounding).
struct DirectionalFd {
  Vec<double> deriv;   // dφ(θ + h v)/dh at h = 0, per direction
  Vec<double> err;     // estimated absolute error of each entry
  double h = 0;        // the largest step used (relative to ‖θ‖)
  std::string reason;  // non-empty: no valid step exists (the check is skipped)
};
template <class Phi>
DirectionalFd directional_fd(const Problem& pb, const std::vector<Vec<double>>& dirs, Phi&& phi);

/// K-FAC factors of every layer without the N·K backward passes of ref::kfac_factors, for
/// networks without BN: the examples are independent, so one backward pass per output
/// coordinate k (cotangent e_k, or for the Fisher √p_y(p − e_y) per class y) covers the batch and
/// S_l = (1/N) Σ D Dᵀ over those passes' layer cotangents D. A as in the reference.
std::vector<ref::KfacFactors<double>> kfac_factors_batched(const MlpSpec& s, const Params& p,
                                                           const Mat<double>& X, ref::KfacCurvature c);

/// For BN layers (examples coupled): the partial K-FAC S of one layer over the output
/// coordinates (n, k) of the first `examples` examples only, one backward pass each (the
/// scaling identity c²S(cθ) = S(θ) holds term by term). Not divided by N.
Mat<double> kfac_S_partial(const MlpSpec& s, const Params& p, const Mat<double>& X, int layer,
                           ref::KfacCurvature c, int examples);

/// Sets r's tolerance from the finite differences' error estimate: max(table value,
/// 10 ‖err‖/max(‖rhs‖, ‖deriv‖)), described in r.tol_basis. Returns false (r.reason says why) if
/// that exceeds 1e-3: the differences cannot resolve the identity on this network.
bool set_fd_tolerance(CheckRecord& r, const DirectionalFd& fd, const Vec<double>& rhs);

/// The step-size part of directional_fd: the largest h ≤ h_max (in units of the direction) at
/// which θ ± s h v (s in (0, 1]) keeps every hidden ReLU pre-activation's sign; 0 if none ≥ h_min.
double kink_free_step(const Problem& pb, const Vec<double>& dir, double h_max, double h_min,
                      std::string& why);

template <class Phi>
DirectionalFd directional_fd(const Problem& pb, const std::vector<Vec<double>>& dirs, Phi&& phi) {
  const Vec<double> theta = pb.params.flatten();
  const double scale = std::max(1.0, theta.norm());
  DirectionalFd out;
  out.deriv.resize(Eigen::Index(dirs.size()));
  out.err.resize(Eigen::Index(dirs.size()));
  constexpr double eps = 2.220446049250313e-16;
  for (std::size_t i = 0; i < dirs.size(); ++i) {
    const Vec<double> v = dirs[i] * (scale / std::max(dirs[i].norm(), 1e-300));
    std::string why;
    const double h = kink_free_step(pb, v, 1e-3, 1e-9, why);
    if (h == 0) {
      out.reason = why;
      return out;
    }
    auto D = [&](double hh) {
      const double fp = phi(Vec<double>(theta + hh * v)), fm = phi(Vec<double>(theta - hh * v));
      return std::pair{(fp - fm) / (2 * hh), std::max(std::abs(fp), std::abs(fm))};
    };
    const auto [d1, m1] = D(h);
    const auto [d2, m2] = D(h / 2);
    // Richardson: D(h) = φ' + c h² + O(h⁴), so (4D(h/2) − D(h))/3 = φ' + O(h⁴); |D(h) − D(h/2)|
    // = (3/4) c h² bounds its truncation error generously; rounding: ~8 eps |φ| / h.
    out.deriv(Eigen::Index(i)) = (4 * d2 - d1) / 3 / scale;
    out.err(Eigen::Index(i)) = (std::abs(d1 - d2) + 8 * eps * std::max(m1, m2) / (h / 2)) / scale;
    out.h = std::max(out.h, h);
  }
  return out;
}

}  // namespace wdlab::theory
