#pragma once
// The names of crosscheck tensors, one function per kind of name, used by every side so that
// names match by construction. Layer tags are "L07 conv2d features.3" (index, kind, name).
#include <string>

#include <fmt/format.h>

#include "common/network_spec.hpp"

namespace wdlab::xcheck::names {

inline std::string layer_tag(const NetworkSpec& spec, int i) {
  const Layer& l = spec.layers[i];
  return fmt::format("L{:02} {}{}{}", i, to_string(l.kind), l.name.empty() ? "" : " ", l.name);
}
// Layer cases: the layer under test is layer 0.
inline std::string layer_output() { return "fwd"; }
inline std::string layer_factor(char which) { return fmt::format("kfc.{}", which); }
// Networks.
inline std::string forward(const NetworkSpec& spec, int i) {
  const char* q = "act";
  switch (layer_info(spec.layers[i].kind).output) {
    case LayerOutput::preactivation: q = "pre"; break;
    case LayerOutput::normalized: q = "bn"; break;
    case LayerOutput::activation: q = "act"; break;
  }
  return fmt::format("{} {}", q, layer_tag(spec, i));
}
inline std::string backward(const NetworkSpec& spec, int i) { return "dout " + layer_tag(spec, i); }
inline std::string input_grad() { return "dinput"; }
inline std::string grad(const std::string& param) { return "grad " + param; }
inline std::string bn_stat(const std::string& what, const std::string& tag) { return fmt::format("bn.{} {}", what, tag); }
inline std::string running(const std::string& param) { return "running " + param; }
inline std::string bn_eval_output(const std::string& tag) { return "bn.eval " + tag; }
inline std::string loss() { return "loss"; }
inline std::string loss_probs() { return "softmax"; }
inline std::string loss_grad() { return "dloss"; }
inline std::string factor(const std::string& est, char which, const std::string& layer) {
  return fmt::format("{}.{} {}", est, which, layer);
}
inline std::string inverse(const std::string& est, char which, const std::string& layer) {
  return fmt::format("{}.{}_inv {}", est, which, layer);
}
inline std::string update(const std::string& est, const std::string& param) { return fmt::format("{}.update {}", est, param); }
inline std::string metric(const std::string& what, const std::string& of) {
  return of.empty() ? "metric " + what : fmt::format("metric {} {}", what, of);
}
// Optimizer cases.
inline std::string step_loss(int k) { return fmt::format("loss step {}", k); }
inline std::string after_steps(const std::string& state_name) { return "after " + state_name; }
/// θ_N − θ_0 of a trainable tensor: its error is relative to how far the steps moved it.
inline std::string delta(const std::string& param) { return "delta " + param; }

}  // namespace wdlab::xcheck::names
