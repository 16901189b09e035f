#pragma once
// The host half of the CUDA side of the crosscheck (plain C++, built and tested with or without
// CUDA): what the side runs and leaves out, the capture request of a case, and the conversion of
// what cuda::Capturer::capture downloads (cuda/capture.hpp) into the tensors the reference side
// returns for the same case (names: tensor_names.hpp, layouts: tensors.hpp). side_cuda.cpp
// does only the device calls.
#include <string>
#include <utility>
#include <vector>

#include "apps/crosscheck/case_data.hpp"
#include "apps/crosscheck/cases.hpp"
#include "apps/crosscheck/tensors.hpp"
#include "cuda/capture.hpp"

namespace wdlab::xcheck::cuda_side {

/// Why the CUDA side cannot run `c`, "" when it can (every case kind, exact mode included).
std::string unsupported(const Case& c);

/// Why the CUDA side returns no tensor of this name and quantity in case `c` ("" when it should
/// have one): metrics of optimizer cases that measure() did not return.
std::string why_missing(const Case& c, const std::string& tensor, Quantity q);

/// `--coverage` lines of the CUDA side: what it compares, what it leaves out and why.
std::vector<std::string> coverage();

/// The capture request of a layer or network case: its first batch, the layer case's output
/// cotangent, a train pass. `images` and `cotangent` hold the float copies the spans point to.
cuda::CaptureRequest request(const Case& c, const CaseData& d, std::vector<float>& images,
                             std::vector<float>& cotangent);

/// A layer case's tensors (as the reference side's run_layer; dense/conv: kfc.A and kfc.S from
/// cap.kfac_given).
Tensors layer_tensors(const Case& c, const cuda::Capture& cap);
/// A network case's tensors (as run_network; the K-FAC factors, inverses, updates and metrics
/// from cap.kfac_fisher, cap.kfac_gauss_newton and cap.params). `weight_metrics`: the backend's
/// own Backend::measure(weight_metrics_request(c)) rows (norm.<w>, elr.<w>; side.hpp).
Tensors network_tensors(const Case& c, const cuda::Capture& cap,
                        const std::vector<std::pair<std::string, double>>& weight_metrics);
/// A loss case's tensors (as run_loss).
Tensors loss_tensors(const Case& c, const cuda::LossCapture& cap);

}  // namespace wdlab::xcheck::cuda_side
