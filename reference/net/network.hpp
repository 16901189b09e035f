#pragma once
// The reference network engine: forward and backward passes over a NetworkSpec, built from the
// ops in reference/ops/. Batches are column-per-example (rows C·H·W, cols N). The one switch
// over layer kinds lives in network.cpp; no op math is inline there.
#include <cstdint>
#include <optional>
#include <vector>

#include "common/network_spec.hpp"
#include "reference/net/params.hpp"
#include "reference/ops/batchnorm.hpp"
#include "reference/ops/pool.hpp"

namespace wdlab::ref {

/// What backward, the K-FAC statistics and the metrics need from a forward pass.
template <class T>
struct NetForward {
  BnMode mode = BnMode::train;
  const Mat<T>* input = nullptr;                        // the batch (kept alive by the caller)
  std::vector<Mat<T>> out;                              // per layer output
  std::vector<std::optional<BatchNormContext<T>>> bn;   // BN contexts (train or eval mode)
  std::vector<std::optional<MaxPoolContext>> pool;      // max-pool argmax
  const Mat<T>& logits() const { return out.back(); }
  const Mat<T>& input_of(const NetworkSpec& spec, int layer, int which = 0) const;
};

template <class T>
NetForward<T> network_forward(const NetworkSpec& spec, const ParamStore<T>& p, const Mat<T>& x,
                              BnMode mode);

/// The same into `fw`, reusing its buffers: a training step's workspace. With the shapes of the
/// last call the activations, BN and pooling contexts and conv scratch are not allocated again.
/// In train mode a ReLU reading only the BN before it (relu_fused_into_bn) is computed in BN's
/// walk; every layer's output is still written, the same bits as unfused.
template <class T>
void network_forward(const NetworkSpec& spec, const ParamStore<T>& p, const Mat<T>& x, BnMode mode,
                     NetForward<T>& fw);

/// Gradients of Σ dlogits ⊙ logits through the whole batch.
template <class T>
struct NetBackward {
  ParamStore<T> grads;         // trainable tensors filled; running statistics stay zero
  std::vector<Mat<T>> d_out;   // cotangent at each layer's output (dense/conv: K-FAC's g)
  Mat<T> d_input;             // zero unless InputGrad::compute
  // Workspace of the reusing network_backward: which d_out (and d_input) this pass reached, and a
  // buffer for cotangents added to one already there (fan-out).
  std::vector<std::uint8_t> reached;
  bool input_reached = false;
  Mat<T> fan_in;
};

enum class InputGrad { skip, compute };

/// Which cotangents d_out holds after a backward pass: every layer's (what the crosscheck
/// compares), or those later work reads (weight layers', K-FAC's g and the metrics): then a BN
/// whose ReLU's backward is fused (relu_backward_fused) gets its cotangent dr ⊙ 1[y > 0] formed
/// inside its own walks and its d_out stays empty. Gradients are the same bits either way.
enum class Cotangents { every_layer, needed };

/// Layers whose weight and bias gradients a backward pass does not form: their tensors in
/// bw.grads keep whatever they held, so a reader must know which they are. K-FAC forms a dense
/// layer's direction from the layer's cotangent and input alone when it preconditions through
/// gradient factors, and its statistics read no gradient: the dW = dy xᵀ products are work nobody
/// reads there. Cotangents (d_out, d_input) are the same bits either way.
struct SkippedWeightGrads {
  std::vector<std::uint8_t> layer;  // per layer, nonzero: skipped; empty: every layer formed
  bool skipped(int i) const { return !layer.empty() && layer[std::size_t(i)] != 0; }
  /// Every layer with weights (K-FAC's statistics pass).
  static SkippedWeightGrads all_weights(const NetworkSpec& spec);
};

template <class T>
NetBackward<T> network_backward(const NetworkSpec& spec, const ParamStore<T>& p,
                                const NetForward<T>& fw, const Mat<T>& dlogits,
                                InputGrad want = InputGrad::skip,
                                Cotangents kept = Cotangents::every_layer,
                                const SkippedWeightGrads* skip = nullptr);

/// The same into `bw`, reusing its buffers (gradients, cotangents): no allocation for them when
/// the shapes are those of the last call. The results are the same bits as the function above.
template <class T>
void network_backward(const NetworkSpec& spec, const ParamStore<T>& p, const NetForward<T>& fw,
                      const Mat<T>& dlogits, InputGrad want, NetBackward<T>& bw,
                      Cotangents kept = Cotangents::every_layer, const SkippedWeightGrads* skip = nullptr);

/// The first trainable tensor (ParamStore order) whose gradient in `bw` holds ±∞ or NaN, or −1
/// when none does. For a layer in `skip` the gradient was not formed and its factors are read in
/// its place: D Xᵀ (and D 1) holds ±∞ or NaN wherever the cotangent D or the input X does, since
/// every row of D meets every column of X. Finite factors whose products overflow are not caught
/// here; the update they give is (the training step checks it).
template <class T>
int first_nonfinite_gradient(const NetworkSpec& spec, const ParamStore<T>& p, const NetForward<T>& fw,
                             const NetBackward<T>& bw, const SkippedWeightGrads* skip = nullptr);

/// running ← m·running + (1−m)·batch for every BN layer of a train-mode pass.
template <class T>
void update_running_stats(const NetworkSpec& spec, ParamStore<T>& p, const NetForward<T>& fw);

/// One K-FAC block's batch statistics (MATH.md §9.3–9.6): dense A = E[ā āᵀ], S = E[g gᵀ];
/// conv Ω and Γ averaged over examples and locations. g is taken at the layer's own output
/// (pre-BN), from cotangents of the *summed* per-example surrogate loss.
template <class T>
struct FactorStats {
  int layer = 0;
  Mat<T> A, S;
  int locations = 1;  // T: P·Q for conv, 1 for dense
};

enum class CurvatureKind {
  fisher,        // K-FAC-F: cotangent p − e_ŷ, ŷ ~ p(y|x) (shared RNG, purpose fisher_target)
  gauss_newton,  // K-FAC-G: cotangent ~ N(0, probe_variance·I) (purpose gn_probe)
};

/// A fresh forward/backward pass in train mode with sampled cotangents, returning every
/// dense/conv layer's factor statistics.
template <class T>
std::vector<FactorStats<T>> kfac_statistics(const NetworkSpec& spec, const ParamStore<T>& p,
                                            const Mat<T>& x, CurvatureKind kind,
                                            double probe_variance, std::uint64_t seed,
                                            std::uint64_t step);

}  // namespace wdlab::ref
