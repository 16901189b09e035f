#pragma once
// Philox-4x32-10 (Salmon et al., SC'11), counter-based: the same (seed, purpose, step, index)
// gives the same numbers on the CPU and, compiled by nvcc, on the GPU. No state to save, so a
// resumed run draws exactly what an uninterrupted one would.
#include <cmath>
#include <cstdint>

#include "common/hd.hpp"

namespace wdlab::rng {

/// What a stream of numbers is for; part of the counter so streams never overlap.
enum class Purpose : std::uint32_t {
  init = 1,          // weight initialization (step = layer, index = element)
  data_order = 2,    // epoch shuffles (step = epoch)
  augment = 3,       // crop offsets and flips (step = global step, index = example)
  fisher_target = 4, // sampled targets for the Fisher (step = global step, index = example)
  gn_probe = 5,      // Gauss-Newton probe vectors (step = global step, index = example*K + k)
  synthetic = 6,     // synthetic data sets
  theory = 7,        // random networks and inputs of the theory suite
  split = 8,         // held-out validation split
  jacobian_probe = 9, // random projections of the Jacobian-norm estimator (step = epoch·2³² + probe,
                      // index = example·K + k)
  curvature_sign = 10, // per-example signs of the batch-BN curvature passes (step = epoch, index = example)
};

struct Block { std::uint32_t v[4]; };

/// One Philox-4x32 evaluation: counter ctr[4], key key[2], 10 rounds.
WDLAB_HD inline Block philox4x32_10(Block ctr, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t(M0) * ctr.v[0];
    const std::uint64_t p1 = std::uint64_t(M1) * ctr.v[2];
    const std::uint32_t hi0 = std::uint32_t(p0 >> 32), lo0 = std::uint32_t(p0);
    const std::uint32_t hi1 = std::uint32_t(p1 >> 32), lo1 = std::uint32_t(p1);
    ctr = Block{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    k0 += W0;
    k1 += W1;
  }
  return ctr;
}

/// The block for (seed, purpose, step, index): key = seed, counter = (index, step, purpose).
WDLAB_HD inline Block draw(std::uint64_t seed, Purpose purpose, std::uint64_t step,
                           std::uint64_t index) {
  const Block ctr{{std::uint32_t(index), std::uint32_t(index >> 32),
                   std::uint32_t(step) ^ (std::uint32_t(step >> 32) * 0x85EBCA6Bu),
                   std::uint32_t(purpose)}};
  return philox4x32_10(ctr, std::uint32_t(seed), std::uint32_t(seed >> 32));
}

/// Uniform in [0, 1) with 53 random bits from two words.
WDLAB_HD inline double to_unit(std::uint32_t hi, std::uint32_t lo) {
  const std::uint64_t bits = (std::uint64_t(hi) << 21) ^ (std::uint64_t(lo) >> 11);
  return double(bits & ((std::uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

WDLAB_HD inline double uniform(std::uint64_t seed, Purpose p, std::uint64_t step,
                               std::uint64_t index) {
  const Block b = draw(seed, p, step, index);
  return to_unit(b.v[0], b.v[1]);
}

/// Standard normal by Box–Muller on the block's two 53-bit uniforms (u1 kept away from 0).
WDLAB_HD inline double normal(std::uint64_t seed, Purpose p, std::uint64_t step,
                              std::uint64_t index) {
  const Block b = draw(seed, p, step, index);
  const double u1 = 1.0 - to_unit(b.v[0], b.v[1]);  // (0, 1]
  const double u2 = to_unit(b.v[2], b.v[3]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

/// Uniform integer in [0, n) (n > 0), by 64-bit multiply-shift (bias < 2^-32 for n < 2^32).
WDLAB_HD inline std::uint32_t below(std::uint64_t seed, Purpose p, std::uint64_t step,
                                    std::uint64_t index, std::uint32_t n) {
  const Block b = draw(seed, p, step, index);
  return std::uint32_t((std::uint64_t(b.v[0]) * n) >> 32);
}

}  // namespace wdlab::rng
