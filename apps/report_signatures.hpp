#pragma once
// The three mechanisms' signatures, measured from runs (report.md's signature table):
//  (I)  BN + SGD/Adam: the effective learning rate η/‖θ_l‖² of the first BN layer falls over
//       training without weight decay and stays level with it; wn-conv (norms taken from the WD
//       run) recovers most of WD's accuracy gain.
//  (II) no BN: WD reduces ‖J_x‖²_F by a larger factor under K-FAC-G than under SGD; across
//       networks the K-FAC GN norm and the Jacobian norm correlate (and with the gen. gap).
//  (III) BN + K-FAC-F: the Fisher trace norm of the first BN layer (normalized weights) falls by
//       orders of magnitude while the GN trace stays within a small factor; WD on the BN layers
//       helps (WD on all layers vs WD on the non-BN layers only).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/report_runs.hpp"

namespace wdlab::app {

struct Signatures {
  std::string markdown;
  nlohmann::ordered_json json;  // the same numbers, for scripts (signatures.json)
};

Signatures measure_signatures(const std::vector<RunRecord>& runs);

}  // namespace wdlab::app
