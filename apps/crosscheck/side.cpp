#include "apps/crosscheck/side.hpp"
#include "apps/crosscheck/tensor_names.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#if defined(WDLAB_HAVE_CUDA)
#include "cuda/device_query.hpp"
#endif

namespace wdlab::xcheck {

namespace {

class Perturbed final : public Side {
 public:
  Perturbed(std::unique_ptr<Side> inner, std::string prefix, double rel)
      : inner_(std::move(inner)), prefix_(std::move(prefix)), rel_(rel) {}
  std::string name() const override { return inner_->name() + fmt::format(" (perturbed: {} x(1{:+g}))", prefix_, rel_); }
  Precision precision() const override { return inner_->precision(); }
  std::string unsupported(const Case& c) const override { return inner_->unsupported(c); }
  std::string why_missing(const Case& c, const std::string& tensor, Quantity q) const override {
    return inner_->why_missing(c, tensor, q);
  }
  Tensors run(const Case& c, const CaseData& d) override {
    Tensors t = inner_->run(c, d);
    for (auto& x : t)
      if (x.name.rfind(prefix_, 0) == 0 && !x.data.empty()) {
        // A zero element would stay zero: perturb the largest one instead, by rel of it.
        std::size_t at = 0;
        for (std::size_t i = 0; i < x.data.size(); ++i)
          if (std::abs(x.data[i]) > std::abs(x.data[at])) at = i;
        x.data[at] *= 1 + rel_;
        x.note += fmt::format("perturbed element {}", at);
      }
    return t;
  }

 private:
  std::unique_ptr<Side> inner_;
  std::string prefix_;
  double rel_;
};

}  // namespace

std::vector<std::string> side_names() { return {"reference-double", "reference-float", "direct", "cuda"}; }

std::unique_ptr<Side> make_side(const std::string& name, CudaSideFactory cuda) {
  if (name == "reference-double") return make_reference_side(Precision::float64);
  if (name == "reference-float") return make_reference_side(Precision::float32);
  if (name == "direct") return make_direct_side();
  if (name == "cuda") {
#if defined(WDLAB_HAVE_CUDA)
    const auto st = cuda::query_devices();
    if (!st.usable) throw SideUnavailable("cuda: " + st.reason);
    if (cuda)
      if (auto s = cuda()) return s;
    throw SideUnavailable("cuda: a GPU is usable, but the CUDA backend has no crosscheck side in this build yet");
#else
    (void)cuda;
    throw SideUnavailable("cuda: the CUDA backend is not built (no CUDA compiler found, or -DWDLAB_CUDA=OFF)");
#endif
  }
  throw UsageError("side", fmt::format("unknown side '{}' (one of: {})", name, fmt::join(side_names(), ", ")));
}

Tensors tensors_after_steps(const io::SafetensorsFile& st, const Tensors& initial, int steps) {
  Tensors out;
  for (const auto& [name, t] : st.tensors) {
    Tensor x;
    x.shape = t.shape;
    if (t.dtype == "F64") {
      x.data = st.f64(name);
    } else {
      const auto f = st.f32(name);
      x.data.assign(f.begin(), f.end());
    }
    const Tensor* init = nullptr;
    for (const auto& p : initial)
      if (p.name == name) init = &p;
    if (name.rfind("optim.", 0) == 0) {
      x.name = names::after_steps(name);
      x.quantity = Quantity::optimizer_state;
    } else if (name.find("running_") != std::string::npos || !init) {
      x.name = names::after_steps(name);
      x.quantity = Quantity::bn_statistic;
    } else {
      WDLAB_CHECK(init->data.size() == x.data.size(), "state tensor " + name + " changed size");
      if (t.dtype == "F32") {
        double n0 = 0, n1 = 0;
        for (std::size_t i = 0; i < x.data.size(); ++i) n0 += init->data[i] * init->data[i], n1 += x.data[i] * x.data[i];
        x.rounding = double(steps) * 0x1p-24 * std::sqrt(std::max(n0, n1));
      }
      for (std::size_t i = 0; i < x.data.size(); ++i) x.data[i] -= init->data[i];
      x.name = names::delta(name);
      x.quantity = Quantity::params_after;
    }
    out.push_back(std::move(x));
  }
  return out;
}

std::unique_ptr<Side> make_perturbed(std::unique_ptr<Side> inner, std::string prefix, double rel) {
  return std::make_unique<Perturbed>(std::move(inner), std::move(prefix), rel);
}

train::MeasureRequest weight_metrics_request(const Case& c) {
  train::MeasureRequest r;
  r.groups.add(train::MetricGroup::norms).add(train::MetricGroup::elr);
  r.lr = c.lr;
  r.seed = c.seed;
  return r;
}

void append_weight_metrics(Tensors& out, const train::NamedValues& rows) {
  for (const auto& [name, v] : rows)
    for (const char* group : {"norm", "elr"})
      if (name.rfind(std::string(group) + ".", 0) == 0)
        out.push_back(Tensor{names::metric(group, name.substr(std::string(group).size() + 1)), Quantity::metric, {1}, {v}, ""});
}

void append_rotation_metrics(Tensors& out, train::Backend& be, const train::HostBatch& probe,
                             const train::RotationMeter& steps, const Case& c, Precision p) {
  train::MeasureRequest req;
  req.groups.add(train::MetricGroup::rotation);
  req.lr = c.lr;
  req.seed = c.seed;
  for (const auto& [name, v] : train::rotation_rows(be.measure_summary(probe, req), steps, c.lr))
    if (std::isfinite(v)) {
      Tensor t{names::metric(name, ""), Quantity::metric, {1}, {v}, ""};
      // ∠(θ_t, θ_{t+1}) between float32-stored parameters: rounding θ_{t+1} moves it by at most
      // 2⁻²⁴‖θ‖, which turns it by at most 2⁻²⁴ rad (each step, so also their mean), whatever
      // the step's own error: for a small angle (~1e-5 rad) that is ~6e-3 relative.
      if (p == Precision::float32 && name.rfind("rot.", 0) == 0) t.rounding = 0x1p-24;
      out.push_back(std::move(t));
    }
}

}  // namespace wdlab::xcheck
