#pragma once
// CIFAR-10 and CIFAR-100, binary version, read from a directory the user gives (nothing is
// downloaded). A record is the label byte(s) then 3072 pixel bytes, 3×32×32 channel-major
// (all red, then green, then blue; rows top to bottom), so pixels land in N×C×H×W unchanged.
//   CIFAR-10:  data_batch_1..5.bin, test_batch.bin; 3073-byte records {label 0..9, pixels}
//   CIFAR-100: train.bin, test.bin; 3074-byte records {coarse 0..19, fine 0..99, pixels}
#include <array>
#include <filesystem>
#include <span>
#include <string>

#include "common/data/dataset.hpp"

namespace wdlab::data {

enum class CifarVariant { cifar10, cifar100 };
/// Every variant, in declaration order (tests loop over it).
inline constexpr std::array<CifarVariant, 2> all_cifar_variants{CifarVariant::cifar10, CifarVariant::cifar100};
static_assert(all_cifar_variants.back() == CifarVariant::cifar100, "all_cifar_variants must list every variant");
std::string to_string(CifarVariant v);

inline constexpr int cifar_pixels = 3 * 32 * 32;
/// Bytes per record: label bytes + 3072.
int cifar_record_bytes(CifarVariant v);

/// The records of `files`, concatenated in order. Throws DataError naming the file when it is
/// missing, its size is not a positive multiple of the record size, or a label is out of range
/// (giving the record index and its byte offset). CIFAR-100: labels = fine, coarse_labels = coarse.
Dataset read_cifar_files(std::span<const std::filesystem::path> files, CifarVariant v,
                         std::string name);

/// CIFAR-10 train (data_batch_1..5.bin, 50000) or test (test_batch.bin, 10000). `dir` holds the
/// files, or is the folder that holds cifar-10-batches-bin/ (how the archive unpacks).
Dataset load_cifar10(Split split, const std::filesystem::path& dir);
/// CIFAR-100 train (train.bin, 50000) or test (test.bin, 10000). `dir` holds the files, or holds
/// cifar-100-binary/.
Dataset load_cifar100(Split split, const std::filesystem::path& dir);

}  // namespace wdlab::data
