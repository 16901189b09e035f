#include "apps/crosscheck/report.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/compare.hpp"

namespace wdlab::xcheck {

std::string to_string(Quantity q) {
  switch (q) {
    case Quantity::preactivation: return "preactivation";
    case Quantity::bn_output: return "bn_output";
    case Quantity::activation: return "activation";
    case Quantity::bn_statistic: return "bn_statistic";
    case Quantity::loss: return "loss";
    case Quantity::activation_grad: return "activation_grad";
    case Quantity::param_grad: return "param_grad";
    case Quantity::kfac_factor: return "kfac_factor";
    case Quantity::damped_inverse: return "damped_inverse";
    case Quantity::preconditioned: return "preconditioned";
    case Quantity::params_after: return "params_after";
    case Quantity::optimizer_state: return "optimizer_state";
    case Quantity::metric: return "metric";
  }
  return "?";
}

std::string shape_string(const std::vector<std::int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ",")); }

std::string index_string(const std::vector<std::int64_t>& shape, std::size_t i) {
  std::vector<std::int64_t> idx(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    const auto n = shape[d] > 0 ? shape[d] : 1;
    idx[d] = std::int64_t(i) % n;
    i = std::size_t(std::int64_t(i) / n);
  }
  return fmt::format("[{}]", fmt::join(idx, ","));
}

std::string to_string(Status s) {
  switch (s) {
    case Status::pass: return "PASS";
    case Status::fail: return "FAIL";
    case Status::missing: return "MISSING";
    case Status::unsupported: return "UNSUPPORTED";
  }
  return "?";
}

double Line::margin() const {
  if (rel_fro == 0) return std::numeric_limits<double>::infinity();
  return tol / rel_fro;
}

tol::Kind tolerance_kind(const Case& c, Quantity q, Precision a, Precision b) {
  if (c.input == InputKind::small_integer) {
    // Integer sums below 2²⁴ are exact in float32 as in double (integer_sum_bound); the K-FAC
    // factors divide by N·T, which rounds in float32.
    if (q == Quantity::kfac_factor && (a == Precision::float32 || b == Precision::float32))
      return tol::Kind::float32_op;
    return tol::Kind::exact_integer;
  }
  if (a == Precision::float64 && b == Precision::float64) return tol::Kind::exact_double;
  switch (c.kind) {
    case CaseKind::layer: return layer_info(c.layer).float32_alone;
    case CaseKind::loss: return tol::Kind::float32_op;
    case CaseKind::optimizer:
    case CaseKind::network: break;
  }
  // BN networks: backward through a stack of BN layers with few entries per channel (batch 8,
  // 2×2 and 1×1 maps at the end) cancels most of each cotangent; everything but the forward
  // quantities (gradients, K-FAC factors, inverses, updates, metrics) takes the BN row.
  const bool has_bn = std::any_of(c.spec.layers.begin(), c.spec.layers.end(),
                                  [](const Layer& l) { return l.kind == LayerKind::batchnorm; });
  const bool forward = q == Quantity::preactivation || q == Quantity::bn_output || q == Quantity::activation ||
                       q == Quantity::bn_statistic || q == Quantity::loss;
  if (c.kind == CaseKind::optimizer) {
    if (has_bn) return tol::Kind::float32_backward_bn;
    // A K-FAC step's parameter delta (−η·update) and its momentum buffer are the preconditioned
    // update up to a scale, and a relative error does not change with the scale: they carry the
    // damped inverse's error (float32_inverse), not a small fraction of it.
    // The metrics after the steps are evaluated at those parameters: a K-FAC step can move θ by
    // a large fraction of ‖θ‖, so its relative error reaches every layer's weights, and a trace
    // through ~31 layers without BN adds them up (ResNet32×4 at width 1/8: 3.2e-4 after one
    // K-FAC-G step, 5e-7 at the same metrics before it or after an SGD step).
    const bool kfac = optim::is_kfac(c.optim.kind);
    if (kfac && (q == Quantity::params_after || q == Quantity::optimizer_state || q == Quantity::metric))
      return tol::Kind::float32_inverse;
    return tol::Kind::float32_steps;
  }
  if (has_bn && !forward) return tol::Kind::float32_backward_bn;
  switch (q) {
    case Quantity::kfac_factor:
    case Quantity::metric: return tol::Kind::float32_curvature;
    case Quantity::damped_inverse:
    case Quantity::preconditioned: return tol::Kind::float32_inverse;
    default: return tol::Kind::float32_network;
  }
}

std::vector<Line> compare_tensors(const Case& c, const Tensors& a, const Tensors& b, Precision pa, Precision pb) {
  std::vector<Line> out;
  for (const Tensor& ta : a) {
    Line l;
    l.case_name = c.name;
    l.tensor = ta.name;
    l.quantity = ta.quantity;
    l.shape = shape_string(ta.shape);
    l.size = ta.data.size();
    l.tol_kind = tolerance_kind(c, ta.quantity, pa, pb);
    l.tol = tol::of(l.tol_kind);
    const Tensor* tb = nullptr;
    for (const Tensor& x : b)
      if (x.name == ta.name) tb = &x;
    if (!tb) {
      l.status = Status::missing;
      l.message = "side b returned no tensor of this name";
      out.push_back(std::move(l));
      continue;
    }
    l.note = ta.note.empty() ? tb->note : (tb->note.empty() ? ta.note : ta.note + "; " + tb->note);
    if (tb->shape != ta.shape || tb->data.size() != ta.data.size()) {
      l.status = Status::fail;
      l.message = fmt::format("shape {} on side b", shape_string(tb->shape));
      out.push_back(std::move(l));
      continue;
    }
    const Comparison cmp = compare(ta.name, tb->data, ta.data, l.tol);
    l.rel_fro = cmp.rel_fro;
    double norm_a = 0;
    for (double v : ta.data) norm_a += std::isfinite(v) ? v * v : 0.0;
    norm_a = std::sqrt(norm_a);
    if (ta.scale > norm_a) {  // ‖b − a‖ / scale
      l.rel_fro = (norm_a > 0 ? cmp.rel_fro * norm_a : cmp.rel_fro) / ta.scale;
      l.scaled = true;
    }
    l.max_abs = cmp.max_abs;
    l.nonfinite = cmp.nonfinite;
    l.where = index_string(ta.shape, cmp.argmax);
    // A side's storage rounding (Tensor::rounding) is allowed on top of tol·‖a‖: the tolerance
    // printed is raised by it, relative to the same denominator, and the line says so.
    if (const double r = ta.rounding + tb->rounding; r > 0) {
      const double denom = std::max(norm_a, ta.scale);
      if (denom > 0) {
        l.tol += r / denom;
        l.message = fmt::format("tol {:.1e} + float32 storage rounding {:.2e} (steps·2^-24·‖θ‖, relative to ‖a‖)",
                                tol::of(l.tol_kind), r / denom);
      }
    }
    bool pass = cmp.nonfinite == 0 && l.rel_fro <= l.tol;
    // A sign update (Lion) against a float32 side: a coordinate whose c sits at rounding level
    // may step the other way on one side, a difference of a whole step (2η); such coordinates
    // are counted against float32_sign_flips and the others compared at the steps row.
    const bool float_side = pa == Precision::float32 || pb == Precision::float32;
    if (!pass && float_side && optim::metric_forms(c.optim).sign_update && ta.quantity == Quantity::params_after &&
        cmp.nonfinite == 0) {
      std::vector<double> ra, rb;
      std::size_t flipped = 0;
      for (std::size_t i = 0; i < ta.data.size(); ++i) {
        if (std::abs(ta.data[i] - tb->data[i]) > 0.5 * c.lr) {
          ++flipped;
          continue;
        }
        ra.push_back(ta.data[i]);
        rb.push_back(tb->data[i]);
      }
      const auto allowed = std::size_t(tol::of(tol::Kind::float32_sign_flips) * double(ta.data.size()));
      const Comparison rest = compare(ta.name, rb, ra, l.tol);
      l.rel_fro = rest.rel_fro;
      pass = flipped <= allowed && rest.rel_fro <= l.tol;
      l.message = fmt::format("{} of {} coordinates a whole step apart (sign flips, {} allowed: {}); the rest compared",
                              flipped, ta.data.size(), allowed, tol::name(tol::Kind::float32_sign_flips));
    }
    if (l.tol_kind == tol::Kind::exact_integer) {
      // Bit for bit: every element equal (compare() passes at rel_fro = 0, i.e. the same thing
      // for finite values; say it explicitly).
      for (std::size_t i = 0; i < ta.data.size() && pass; ++i) pass = ta.data[i] == tb->data[i];
    }
    l.status = pass ? Status::pass : Status::fail;
    out.push_back(std::move(l));
  }
  // A tensor only side b has is no evidence either way: MISSING too, so that swapping the
  // sides (a = cuda, b = reference) cannot turn the reference's extra tensors into silence.
  for (const Tensor& tb : b) {
    const bool in_a = std::any_of(a.begin(), a.end(), [&](const Tensor& x) { return x.name == tb.name; });
    if (in_a) continue;
    Line l;
    l.case_name = c.name;
    l.tensor = tb.name;
    l.quantity = tb.quantity;
    l.shape = shape_string(tb.shape);
    l.size = tb.data.size();
    l.tol_kind = tolerance_kind(c, tb.quantity, pa, pb);
    l.tol = tol::of(l.tol_kind);
    l.status = Status::missing;
    l.message = "side a returned no tensor of this name";
    out.push_back(std::move(l));
  }
  return out;
}

Line unsupported_line(const Case& c, const std::string& why) {
  Line l;
  l.status = Status::unsupported;
  l.case_name = c.name;
  l.tensor.assign(1, '*');  // not = "*": GCC 12 warns falsely (-Wrestrict) once this is inlined
  l.message = why;
  return l;
}

Line error_line(const Case& c, const std::string& what) {
  Line l = unsupported_line(c, fmt::format("error: {}", what));
  l.status = Status::fail;
  return l;
}

std::string format_line(const Line& l) {
  std::string s = fmt::format("{:<11} {:<44} {:<40} {:<16}", to_string(l.status), l.case_name, l.tensor, l.shape);
  if (l.status == Status::pass || (l.status == Status::fail && (l.message.empty() || l.rel_fro > 0 || l.max_abs > 0)))
    s += fmt::format(" rel{} {:.2e} max {:.2e} @{} nonfinite {} tol {:.1e} ({}) margin {:.3g}", l.scaled ? "/scale" : "", l.rel_fro, l.max_abs,
                     l.where, l.nonfinite, l.tol, tol::name(l.tol_kind), l.margin());
  if (!l.message.empty()) s += " " + l.message;
  if (!l.note.empty()) s += " | " + l.note;
  return s;
}

nlohmann::ordered_json to_json(const Line& l) {
  nlohmann::ordered_json j;
  j["status"] = to_string(l.status);
  j["case"] = l.case_name;
  j["tensor"] = l.tensor;
  j["quantity"] = to_string(l.quantity);
  j["shape"] = l.shape;
  j["size"] = l.size;
  j["rel_fro"] = l.rel_fro;
  j["rel_to_scale"] = l.scaled;
  j["max_abs"] = l.max_abs;
  j["where"] = l.where;
  j["nonfinite"] = l.nonfinite;
  j["tol"] = l.tol;
  j["tol_kind"] = std::string(tol::name(l.tol_kind));
  j["margin"] = std::isfinite(l.margin()) ? nlohmann::ordered_json(l.margin()) : nlohmann::ordered_json("inf");
  j["note"] = l.note;
  j["message"] = l.message;
  return j;
}

void Summary::add(const Line& l) {
  switch (l.status) {
    case Status::pass: ++pass; break;
    case Status::fail: ++fail; break;
    case Status::missing: ++missing; break;
    case Status::unsupported: ++unsupported; break;
  }
}

std::string Summary::describe() const {
  return fmt::format("{} compared: {} passed, {} failed, {} missing, {} unsupported", pass + fail + missing, pass,
                     fail, missing, unsupported);
}

}  // namespace wdlab::xcheck
