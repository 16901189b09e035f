#include "apps/checkpoint_meta.hpp"

#include "common/data/dataset.hpp"

namespace wdlab::app {

namespace {
nlohmann::ordered_json shape_json(const Shape& s) { return nlohmann::ordered_json::array({s.C, s.H, s.W}); }
}  // namespace

nlohmann::ordered_json network_json(const NetworkSpec& spec) {
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (const Layer& l : spec.layers) {
    nlohmann::ordered_json j;
    j["kind"] = to_string(l.kind);
    j["name"] = l.name;
    j["inputs"] = l.inputs;
    j["in"] = shape_json(l.in);
    j["out"] = shape_json(l.out);
    switch (layer_info(l.kind).fields) {  // the fields the kind has (common/layer_kinds.hpp)
      case LayerFields::dense: j["bias"] = l.bias == Bias::on; break;
      case LayerFields::conv2d:
        j["bias"] = l.bias == Bias::on;
        j["kernel"] = l.kernel;
        j["stride"] = l.stride;
        j["pad"] = l.pad;
        break;
      case LayerFields::window:
        j["kernel"] = l.kernel;
        j["stride"] = l.stride;
        break;
      case LayerFields::batchnorm:
        j["affine"] = l.affine == Affine::on;
        j["bn_eps"] = l.bn_eps;
        j["bn_momentum"] = l.bn_momentum;  // running ← m·running + (1−m)·batch
        break;
      case LayerFields::none: break;
    }
    layers.push_back(std::move(j));
  }
  nlohmann::ordered_json n;
  n["model"] = spec.model;
  n["input"] = shape_json(spec.input);
  n["classes"] = spec.classes;
  n["layers"] = std::move(layers);
  return n;
}

nlohmann::ordered_json input_pipeline_json(const ExperimentConfig& cfg, const train::Datasets& data,
                                           const data::ChannelStats& stats) {
  const data::Dataset& t = data.train;
  nlohmann::ordered_json p;
  p["dataset"] = cfg.data.dataset;
  p["directory"] = data.test.source;  // where the files were read (the loader's resolved directory)
  p["dataset_hash"] = data::content_hash_hex(data.train);  // of the training split as fed (normalized)
  p["test_hash"] = data::content_hash_hex(data.test);
  p["layout"] = "NCHW";
  p["channels"] = t.channels;
  p["height"] = t.height;
  p["width"] = t.width;
  p["classes"] = t.num_classes;
  p["pixels"] = "float32(byte) / 255.0f";
  nlohmann::ordered_json norm;
  norm["mean"] = stats.mean;  // doubles, printed so that they read back exactly
  norm["std"] = stats.std;
  norm["applied"] = "x = float32((x - mean[c]) * (1 / std[c])), the arithmetic in double";
  norm["statistics"] = "per channel over the training split after the hold-out; population std";
  p["normalization"] = std::move(norm);
  nlohmann::ordered_json split;
  split["seed"] = cfg.seed;
  split["train_subset"] = cfg.data.train_subset;
  split["test_subset"] = cfg.data.test_subset;
  split["validation"] = cfg.data.validation;
  split["holdout"] = "the first validation examples of a Philox Fisher-Yates permutation (purpose split) of the "
                     "first train_subset training examples; the rest, in file order, train";
  split["train"] = data.train.size();
  split["val"] = data.val.size();
  split["test"] = data.test.size();
  p["split"] = std::move(split);
  nlohmann::ordered_json aug;
  aug["enabled"] = cfg.data.augment == train::Augment::on;
  aug["pad"] = train::AugmentSpec{}.pad;
  aug["fill"] = 0.0;  // after normalization: pads with the mean
  aug["crop"] = "random (Philox purpose augment, step = iteration, index = example id)";
  aug["flip"] = "horizontal, p = 1/2";
  aug["applied_to"] = "training batches only";
  p["augmentation"] = std::move(aug);
  return p;
}

}  // namespace wdlab::app
