#pragma once
// IDX files (LeCun's MNIST format, also Fashion-MNIST), raw or gzip-compressed, read via zlib.
// Header: 4 magic bytes {0, 0, type, ndims} (type 0x08 = unsigned byte), then ndims big-endian
// uint32 sizes, then the data, row-major. Images are idx3 (N, rows, cols), labels idx1 (N).
// Every malformation is a DataError naming the file, the byte offset or field, and what was
// expected; truncation is caught both by gzerror (a cut .gz otherwise reads as a clean end of
// file) and by comparing the bytes read with the size the header promises.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/data/dataset.hpp"

namespace wdlab::data {

inline constexpr std::uint32_t idx_magic_images_u8 = 0x00000803;  // idx3, unsigned byte
inline constexpr std::uint32_t idx_magic_labels_u8 = 0x00000801;  // idx1, unsigned byte

struct IdxImages {
  std::uint32_t count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // count×rows×cols
};

/// Expected image size; `any` accepts whatever the header says (each side must still be ≥ 1).
struct IdxShape {
  std::uint32_t rows = 0, cols = 0;  // 0 = any
};

/// Reads an idx3 u8 image file (raw or .gz, told apart by content, not by name).
IdxImages read_idx_images(const std::filesystem::path& path, IdxShape expect = {});
/// Reads an idx1 u8 label file (raw or .gz).
std::vector<std::uint8_t> read_idx_labels(const std::filesystem::path& path);

/// An image file and its label file as one Dataset (C = 1, pixels/255). Throws DataError when the
/// counts differ or a label is ≥ num_classes (naming the label's byte offset).
Dataset load_idx_pair(const std::filesystem::path& images_path,
                      const std::filesystem::path& labels_path, int num_classes,
                      IdxShape expect = {}, std::string name = "idx");

/// The Fashion-MNIST directory: $WDLAB_FASHION_MNIST_DIR if set and non-empty, else
/// /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist).
std::filesystem::path fashion_mnist_dir();

/// Fashion-MNIST train (60000) or test (10000), 1×28×28, 10 classes. Accepts the standard names
/// (train-images-idx3-ubyte, t10k-labels-idx1-ubyte, ...) raw or with .gz; a missing file is a
/// DataError naming the path and the package dataset-fashion-mnist.
Dataset load_fashion_mnist(Split split, const std::filesystem::path& dir = fashion_mnist_dir());

/// MNIST from a directory the user gives (same file names and format as Fashion-MNIST).
Dataset load_mnist(Split split, const std::filesystem::path& dir);

}  // namespace wdlab::data
