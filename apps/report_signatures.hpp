#pragma once
// The three mechanisms' signatures, measured from runs by the pre-registered rules of
// apps/report_rules.hpp (I.1 ELR ratio, I.2 rotational equilibrium, II.1 Jacobian factor, II.2 GN
// norm ~ Jacobian, III.1 effective damping growth, III.2 Fisher fall vs GN span), paired by family
// and seed, each factor with its spread over seeds. One row per setting (family) a rule applies to;
// a rule that finds no setting gets one "not measured" row saying what it needs.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/report_runs.hpp"

namespace wdlab::app {

/// One row of the signature table.
struct SignatureRow {
  std::string id;        // "I.1", ... (rules::kRules)
  std::string setting;   // the family and layer, or "—"
  std::string measured;  // the value with its spread over seeds
  std::string verdict;   // "shows" | "does not show" | "not measured"
  nlohmann::ordered_json numbers;
};

struct Signatures {
  std::vector<SignatureRow> rows;
  std::string markdown;
  nlohmann::ordered_json json;  // the same numbers, for scripts (signatures.json)
};

Signatures measure_signatures(const std::vector<RunRecord>& runs);

inline constexpr const char* kShows = "shows";
inline constexpr const char* kDoesNotShow = "does not show";
inline constexpr const char* kNotMeasured = "not measured";

}  // namespace wdlab::app
