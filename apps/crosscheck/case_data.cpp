#include "apps/crosscheck/case_data.hpp"

#include "common/philox.hpp"
#include "reference/net/params.hpp"

namespace wdlab::xcheck {

namespace {

// Philox steps of the crosscheck's synthetic draws (purpose synthetic), apart from other users.
constexpr std::uint64_t kInputStep = 7000, kLabelStep = 7100, kCotangentStep = 7200, kOutputStep = 7300,
                        kTargetStep = 7400, kIntWeightStep = 7500;

double draw(InputKind kind, std::uint64_t seed, std::uint64_t step, std::uint64_t i) {
  if (kind == InputKind::small_integer) return double(int(rng::below(seed, rng::Purpose::synthetic, step, i, 16)) - 8);
  return double(float(rng::normal(seed, rng::Purpose::synthetic, step, i)));
}

std::vector<double> draws(InputKind kind, std::uint64_t seed, std::uint64_t step, std::size_t n) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = draw(kind, seed, step, i);
  return v;
}

}  // namespace

CaseData make_case_data(const Case& c) {
  CaseData d;
  if (c.kind == CaseKind::loss) {
    const std::size_t n = std::size_t(c.loss_classes) * c.batch;
    d.outputs = draws(c.input, c.seed, kOutputStep, n);
    d.targets = draws(c.input, c.seed, kTargetStep, n);
    Batch b;
    for (int i = 0; i < c.batch; ++i)
      b.labels.push_back(std::int32_t(rng::below(c.seed, rng::Purpose::synthetic, kLabelStep, i, c.loss_classes)));
    d.batches.push_back(std::move(b));
    return d;
  }
  const NetworkSpec& spec = c.spec;
  const std::size_t in = std::size_t(spec.input.size()) * c.batch;
  const int n_batches = c.kind == CaseKind::optimizer ? c.steps : 1;
  for (int k = 0; k < n_batches; ++k) {
    Batch b;
    b.x = draws(c.input, c.seed, kInputStep + 1000 * std::uint64_t(k), in);
    for (int i = 0; i < c.batch; ++i)
      b.labels.push_back(std::int32_t(
          rng::below(c.seed, rng::Purpose::synthetic, kLabelStep + 1000 * std::uint64_t(k), i, spec.classes)));
    d.batches.push_back(std::move(b));
  }
  if (c.kind == CaseKind::layer)
    d.cotangent = draws(c.input, c.seed, kCotangentStep, std::size_t(spec.layers.back().out.size()) * c.batch);
  // Parameters: the reference's initialization (Glorot from Philox), rounded to float32; exact
  // mode replaces every trainable tensor by integers (running statistics keep 0 and 1).
  const auto p = ref::init_params<double>(spec, c.seed, ref::Init::glorot_uniform);
  for (std::size_t i = 0; i < p.info.size(); ++i) {
    const ParamInfo& info = p.info[i];
    Tensor t;
    t.name = info.name;
    t.shape = info.shape;
    t.data = ref::to_pytorch_order(info, p.values[i]);
    for (std::size_t j = 0; j < t.data.size(); ++j) {
      if (c.input == InputKind::small_integer && info.trainable())
        t.data[j] = draw(InputKind::small_integer, c.seed, kIntWeightStep + i, j);
      else
        t.data[j] = double(float(t.data[j]));
    }
    d.params.push_back(std::move(t));
  }
  return d;
}

}  // namespace wdlab::xcheck
