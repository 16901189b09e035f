// Writes the sample checkpoint that check_safetensors_interop.py reads with NumPy. The values are
// formulas the script recomputes on its own, so neither side trusts the other.
#include <cstdio>
#include <exception>
#include <limits>

#include "common/io/safetensors.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: io_write_sample OUT.safetensors\n");
    return 2;
  }
  try {
    using wdlab::io::Tensor;
    wdlab::io::SafetensorsFile f;
    std::vector<float> w(6);
    for (int i = 0; i < 6; ++i) w[i] = 0.5f * static_cast<float>(i) - 1.0f;  // i/2 - 1
    std::vector<double> v(4);
    for (int i = 0; i < 4; ++i) v[i] = 1.0 / (i + 1);
    f.tensors["features.0.weight"] = Tensor::from_f32({2, 3}, w);
    f.tensors["optim.features.0.weight.v"] = Tensor::from_f64({4}, v);
    f.tensors["step"] = Tensor::from_i64({}, std::vector<std::int64_t>{-42});
    f.tensors["big"] =
        Tensor::from_i64({3}, std::vector<std::int64_t>{std::int64_t{1} << 40, -1,
                                                        std::numeric_limits<std::int64_t>::min()});
    f.tensors["empty"] = Tensor::from_f32({0, 3}, {});
    f.metadata["format"] = "pt";
    f.metadata["note"] = "wd \"λ\" = 5e-4!";  // makes the header need padding
    wdlab::io::save(argv[1], f);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "io_write_sample: %s\n", e.what());
    return 1;
  }
  return 0;
}
