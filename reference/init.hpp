#pragma once
namespace wdlab::ref {
/// Weight initialization: Glorot-uniform (the official code's variance_scaling fan_avg uniform)
/// or He-normal (std √(2/fan_in)).
enum class Init { glorot_uniform, he_normal };
}  // namespace wdlab::ref
