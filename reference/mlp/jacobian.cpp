#include "reference/mlp/jacobian.hpp"

#include "common/errors.hpp"

namespace wdlab::ref {

template <class T>
std::vector<Mat<T>> jacobian_theta(const MlpSpec& spec, const MlpParams<T>& p, const Mat<T>& X,
                                   JacobianMethod method) {
  const auto fw = forward(spec, p, X);
  const Eigen::Index N = X.cols(), K = spec.output_dim, P = spec.num_params();
  std::vector<Mat<T>> J(N, Mat<T>(K, P));
  if (method == JacobianMethod::backprop) {
    for (Eigen::Index n = 0; n < N; ++n)
      for (Eigen::Index k = 0; k < K; ++k) {
        Mat<T> dF = Mat<T>::Zero(K, N);
        dF(k, n) = T(1);  // row k of J_θ[n] is ∇_θ f_{k,n}
        J[n].row(k) = backward(spec, p, fw, dF).flatten().transpose();
      }
  } else {
    const Mat<T> dX = Mat<T>::Zero(X.rows(), N);
    for (Eigen::Index q = 0; q < P; ++q) {
      Vec<T> e = Vec<T>::Zero(P);
      e(q) = T(1);  // column q of every J_θ[n] is the directional derivative along θ_q
      const Mat<T> df = jvp(spec, p, fw, MlpParams<T>::unflatten(spec, e), dX);
      for (Eigen::Index n = 0; n < N; ++n) J[n].col(q) = df.col(n);
    }
  }
  return J;
}

template <class T>
std::vector<Mat<T>> jacobian_x(const MlpSpec& spec, const MlpParams<T>& p, const Mat<T>& X,
                               JacobianMethod method) {
  const auto fw = forward(spec, p, X);
  const Eigen::Index N = X.cols(), K = spec.output_dim, D = X.rows();
  std::vector<Mat<T>> J(N, Mat<T>(K, D));
  if (method == JacobianMethod::backprop) {
    for (Eigen::Index n = 0; n < N; ++n)
      for (Eigen::Index k = 0; k < K; ++k) {
        Mat<T> dF = Mat<T>::Zero(K, N);
        dF(k, n) = T(1);
        J[n].row(k) = backward(spec, p, fw, dF).dX.col(n).transpose();
      }
  } else {
    const MlpParams<T> zero = zeros_like<T>(spec);
    for (Eigen::Index n = 0; n < N; ++n)
      for (Eigen::Index i = 0; i < D; ++i) {
        Mat<T> dX = Mat<T>::Zero(D, N);
        dX(i, n) = T(1);
        J[n].col(i) = jvp(spec, p, fw, zero, dX).col(n);
      }
  }
  return J;
}

template std::vector<Mat<double>> jacobian_theta<double>(const MlpSpec&, const MlpParams<double>&,
                                                         const Mat<double>&, JacobianMethod);
template std::vector<Mat<double>> jacobian_x<double>(const MlpSpec&, const MlpParams<double>&,
                                                     const Mat<double>&, JacobianMethod);

}  // namespace wdlab::ref
