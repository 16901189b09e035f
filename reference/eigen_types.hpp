#pragma once
// Eigen aliases used across the reference. Batches are stored column-per-example:
// X is d×N, activations of a layer with n units are n×N.
#include <Eigen/Dense>

namespace wdlab::ref {
template <class T> using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
template <class T> using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
}  // namespace wdlab::ref
