#pragma once
// K-FAC's scalar policy, backend-neutral (MATH.md §9.3 item 2, §9.5): when factors and inverses
// are updated, the π-split of the Tikhonov damping between a layer's two Kronecker factors, the
// damping floor and raise of a factor that is not numerically positive definite, the names of the
// K-FAC checkpoint state, and damping_frac. Both backends call these; only the arithmetic on the
// factors themselves (traces, factorizations, eigenvalues) is theirs. A separate object from the
// inverse method and the update rule (STYLE.md #13).
#include <cstdint>
#include <span>
#include <string>

#include "common/optim/optim_config.hpp"

namespace wdlab::optim {

/// Whether update_factors follows step k: (k+1) mod T_cov = 0.
bool kfac_wants_factors(const KfacConfig& c, std::int64_t k);

enum class InversesReady { no, yes };
/// Whether step k recomputes the damped inverses first: none yet, or k mod T_inv = 0.
bool kfac_inverses_due(const KfacConfig& c, std::int64_t k, InversesReady ready);

/// Tikhonov damping λ split between the two factors of a layer by the trace-norm π-correction,
///   λ' = λ/T  (T = spatial output locations for conv, 1 for dense),
///   π  = √((tr A / dim A) / (tr S / dim S))  (1 unless both means are finite and > 0),
///   Ã  = A + π√λ'·I,   S̃ = S + (√λ'/π)·I,
/// so that T·(Ã ⊗ S̃) = T·(A ⊗ S) + (cross terms) + λ·I.
struct SplitDamping {
  double lambda_eff = 0;  // λ'
  double pi = 1;          // π
  double a = 0;           // π√λ', added to A
  double s = 0;           // √λ'/π, added to S
};
SplitDamping pi_split_damping(double trace_a, int dim_a, double trace_s, int dim_s, double lambda,
                              int locations);

/// The damped-inverse retry policy: a factor F (n × n) for which F + dI is not numerically
/// positive definite has d raised to max(10d, floor), floor = √ε·(|tr F|/n, or 1 when that is
/// below the smallest normal number), ε the machine epsilon of the arithmetic (float or double),
/// so that the inverse of a singular factor is still accurate to about √ε.
template <class T>
double damping_floor(double trace, int n);
double raised_damping(double used, double floor);

/// K-FAC state names: "optim.kfac.<what>.<layer>" (what: A, S, A_inv, S_inv, damping), and the
/// two flags. Checkpoints of every release use these bytes.
std::string kfac_state_name(const std::string& what, const std::string& layer);
inline constexpr const char* kfac_initialized_name = "optim.kfac.initialized";
inline constexpr const char* kfac_inverses_ready_name = "optim.kfac.inverses_ready";

/// damping_frac: the fraction of Kronecker eigenvalue pairs with T·aᵢ·sⱼ > λ, from the
/// eigenvalues of A and S (the block T·(A ⊗ S) has eigenvalues T·aᵢ·sⱼ).
double damping_fraction(std::span<const double> eig_a, std::span<const double> eig_s, int locations,
                        double lambda);

}  // namespace wdlab::optim
