#pragma once
// The layout of the optimizer state ("optim." tensors) in checkpoints, shared by both backends.
// Version 2 (metadata "optim_layout": "2"), PyTorch's: every tensor row-major (C order), and
//   per-parameter state  optim.momentum.<p>, optim.adam.m.<p>, optim.adam.v.<p>: p's own shape,
//                        element for element beside p (torch.optim's state[p] buffers);
//   K-FAC matrices       optim.kfac.{A,S,A_inv,S_inv}.<layer>: [n, n]. A[i][j] = E[a_i a_j] over the
//                        layer's inputs a (dense: input unit i, then the homogeneous 1 of the bias
//                        last; conv: patch index (c·R + r)·S + s, bias last), so n = in (+1);
//                        S[i][j] = E[g_i g_j] over the output cotangents g (output unit / channel i),
//                        n = out. A weight W[o][i] pairs S's index o with A's index i. Symmetric;
//                        the inverses are those of the damped factors;
//   optim.kfac.damping.<layer>: [4] (λ', π, π√λ', √λ'/π);  scalars (optim.adam.t,
//                        optim.kfac.initialized, optim.kfac.inverses_ready): 0-d, shape [].
// Version 1 (no "optim_layout" key; wdlab up to commit f9ad431): every tensor was the column-major
// storage of the reference's compute matrix M (rows × cols; per-parameter: rows = shape[0],
// cols = Π shape[1:], vectors n×1), with shape [cols, rows]. upgrade_optim_layout converts it.
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/io/safetensors.hpp"
#include "common/network_spec.hpp"
#include "common/optim/optim_config.hpp"

namespace wdlab::train {

inline constexpr const char* kOptimLayoutKey = "optim_layout";
inline constexpr int kOptimLayoutVersion = 2;

/// The prefixes of per-parameter state: the tensor "<prefix><parameter name>" has p's shape.
/// Listed with the optimizers (common/optim/optim_config.hpp).
inline constexpr const auto& kParamStatePrefixes = optim::param_state_prefixes;

/// The parameter whose per-parameter state `name` is, or nullptr (K-FAC matrices, scalars, and
/// anything that is not optimizer state).
const ParamInfo* state_param(const std::string& name, std::span<const ParamInfo> params);

/// The version-2 shape of a state entry that is not per-parameter, held as a rows × cols matrix:
/// [] for 1×1, [cols] for 1×cols, [rows, cols] otherwise.
std::vector<std::int64_t> plain_state_shape(std::int64_t rows, std::int64_t cols);

/// The rows × cols matrix a version-2 entry that is not per-parameter stands for (the inverse of
/// plain_state_shape); DataError naming the tensor for a rank above 2.
std::pair<std::int64_t, std::int64_t> plain_state_matrix(const io::Tensor& t, const std::string& name);

/// The file's layout version: 1 without the key, else its value; DataError naming the file for
/// a value that is not 1 or 2.
int optim_layout_version(const io::SafetensorsFile& f);

/// Writers: sets metadata optim_layout = kOptimLayoutVersion.
void mark_optim_layout(io::SafetensorsFile& f);

/// In place: converts a version-1 file's optim.* tensors to version 2 (transposed to row-major,
/// per-parameter state reshaped to its parameter's shape) and marks it; a version-2 file is left
/// as it is. DataError naming the file and tensor when a version-1 tensor is not 2-d or its size
/// does not fit its parameter.
void upgrade_optim_layout(io::SafetensorsFile& f, std::span<const ParamInfo> params);

}  // namespace wdlab::train
