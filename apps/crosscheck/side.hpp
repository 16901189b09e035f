#pragma once
// A crosscheck "side": something that runs a case on given inputs and returns named tensors
// (tensors.hpp states their names' layouts). `wdlab crosscheck --a X --b Y` compares two sides
// quantity by quantity; side a is the one errors are relative to.
//   reference-double  the Eigen engine in double (the oracle)
//   reference-float   the same engine in float32 (CI runs the whole machinery with it)
//   direct            plain nested loops, no GEMM, double: the independent path of --exact
//   cuda              the CUDA backend (when built, on a machine with a usable GPU)
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/crosscheck/case_data.hpp"
#include "apps/crosscheck/cases.hpp"
#include "apps/crosscheck/tensors.hpp"
#include "common/errors.hpp"
#include "common/io/safetensors.hpp"
#include "common/train/measure.hpp"
#include "common/train/rotation.hpp"

namespace wdlab::xcheck {

enum class Precision { float32, float64 };

class Side {
 public:
  virtual ~Side() = default;
  virtual std::string name() const = 0;
  virtual Precision precision() const = 0;
  /// Why this side cannot run `c`, or "" when it can. Such a case is reported UNSUPPORTED
  /// (counted as a failure), never as passed.
  virtual std::string unsupported(const Case& c) const {
    (void)c;
    return "";
  }
  virtual Tensors run(const Case& c, const CaseData& d) = 0;
  /// Why this side returns no tensor of this name and quantity in case `c`, "" when it should
  /// have one. The report keeps such a tensor MISSING (a failure) and prints the reason.
  virtual std::string why_missing(const Case& c, const std::string& tensor, Quantity q) const {
    (void)c, (void)tensor, (void)q;
    return "";
  }
};

/// Thrown by Side::run for a case found unsupported only while running it (e.g. a backend that
/// refuses an optimizer at construction): reported UNSUPPORTED with the message.
struct CaseUnsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A side that cannot be made here (the CUDA backend not built, no usable GPU, no CUDA side
/// yet). Exit code 2 with one line.
struct SideUnavailable : Error {
  explicit SideUnavailable(const std::string& what) : Error(ExitCode::usage, what) {}
};

/// Makes the CUDA side (apps/crosscheck/side_cuda.cpp, linked into the wdlab binary of CUDA
/// builds); nullptr where there is none. Called only after query_devices() found a usable GPU.
using CudaSideFactory = std::unique_ptr<Side> (*)();

/// The sides by name (above); UsageError on an unknown name, SideUnavailable for cuda where it
/// cannot run (not built; no usable GPU, with query_devices()'s reason; no factory).
std::unique_ptr<Side> make_side(const std::string& name, CudaSideFactory cuda = nullptr);
std::vector<std::string> side_names();

/// Negative control (test only): wraps `inner` and multiplies element 0 of every tensor whose
/// name starts with `prefix` by (1 + rel). The comparison of that tensor must fail.
std::unique_ptr<Side> make_perturbed(std::unique_ptr<Side> inner, std::string prefix, double rel);

/// The metric groups optimizer cases compare after their steps (all that a backend measures on
/// one batch: norms, elr, damping, jacobian, jacobian_est, gn, trace), η = the case's lr.
train::MeasureRequest measure_request(const Case& c);
/// The same for the groups that metrics.curvature_bn changes (gn, trace), with BN in batch mode
/// (the probe batch's statistics, per-example Philox signs); its metrics are named with the
/// suffix of_batch_bn so that both modes are compared.
train::MeasureRequest measure_request_batch_bn(const Case& c);
inline constexpr const char* of_batch_bn = "bn=batch";

/// The weight metrics a network case compares: ‖θ_l‖ and η/‖θ_l‖² (η = the case's lr) as each
/// side's own backend measures them (Backend::measure, groups norms and elr), so a wrong elr on
/// one side fails on its own instead of following from the norm.
train::MeasureRequest weight_metrics_request(const Case& c);
/// The norm.<w> and elr.<w> rows of a measure() result as tensors `metric norm <w>` and
/// `metric elr <w>` (other rows, such as elr_opt.<w>, are left out: network cases have no steps).
void append_weight_metrics(Tensors& out, const train::NamedValues& rows);

/// Group rotation after an optimizer case's steps: each side records its own steps
/// (Backend::record_weight_steps into `steps`) and its rows come from the shared rotation_rows
/// on its own measure_summary (η = the case's lr), as tensors `metric rot.<w>`, ... Rows that are
/// null (no prediction applies: the same on every side, a function of the case's config) are
/// left out. A float32 side's rot.* carry Tensor::rounding = 2⁻²⁴ rad (its parameters' storage).
void append_rotation_metrics(Tensors& out, train::Backend& be, const train::HostBatch& probe,
                             const train::RotationMeter& steps, const Case& c, Precision p);

/// A backend's state() after an optimizer case's steps as crosscheck tensors: every trainable
/// tensor as θ_N − θ_0 ("delta <name>", θ_0 = the case's `initial` parameters), running
/// statistics and "optim." state as they are ("after <name>"). A float32 state's deltas carry
/// Tensor::rounding = steps·2⁻²⁴·max(‖θ_0‖, ‖θ_N‖) (the parameters rounded once per step).
Tensors tensors_after_steps(const io::SafetensorsFile& state, const Tensors& initial, int steps);

std::unique_ptr<Side> make_reference_side(Precision p);
std::unique_ptr<Side> make_direct_side();

}  // namespace wdlab::xcheck
