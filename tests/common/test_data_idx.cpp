// IDX reader on files the tests write: parse (raw and .gz), and each malformation rejected with
// a message naming the file, the byte offset or field, and what was expected.
#include <doctest/doctest.h>

#include <cstdlib>

#include "common/data/idx.hpp"
#include "common/errors.hpp"
#include "tests/common/data_test_util.hpp"

using namespace wdlab;
using namespace wdlab::data;
using namespace wdlab::test;

namespace {

// Three 2×3 images, labels {2, 0, 1}, written raw or gzipped under the given names.
struct SmallPair {
  std::filesystem::path images, labels;
};

SmallPair write_small_pair(const TempDir& dir, bool gz_images, bool gz_labels) {
  SmallPair p{dir / (gz_images ? "img.idx3.gz" : "img.idx3"),
              dir / (gz_labels ? "lab.idx1.gz" : "lab.idx1")};
  (gz_images ? write_gz : write_raw)(p.images, idx_images(3, 2, 3));
  (gz_labels ? write_gz : write_raw)(p.labels, idx_labels({2, 0, 1}));
  return p;
}

void check_small(const Dataset& d) {
  CHECK(d.size() == 3);
  CHECK(d.channels == 1);
  CHECK(d.height == 2);
  CHECK(d.width == 3);
  CHECK(d.num_classes == 3);
  REQUIRE(d.images.size() == 18);
  CHECK(d.labels == std::vector<std::int32_t>{2, 0, 1});
  CHECK(d.coarse_labels.empty());
  // pixel (i, y, x) = 7i + 3y + x, stored as byte/255
  for (int i = 0; i < 3; ++i)
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 3; ++x)
        CHECK(d.images[std::size_t(i * 6 + y * 3 + x)] == float(7 * i + 3 * y + x) / 255.0f);
}

}  // namespace

TEST_CASE("idx: raw files parse to the right shape, pixels and labels") {
  TempDir dir;
  const SmallPair p = write_small_pair(dir, false, false);
  check_small(load_idx_pair(p.images, p.labels, 3));
}

TEST_CASE("idx: gzip files parse to the same content as raw ones") {
  TempDir dir;
  const SmallPair raw = write_small_pair(dir, false, false);
  TempDir dir2;
  const SmallPair gz = write_small_pair(dir2, true, true);
  const Dataset a = load_idx_pair(raw.images, raw.labels, 3);
  const Dataset b = load_idx_pair(gz.images, gz.labels, 3);
  check_small(b);
  CHECK(content_hash(a) == content_hash(b));
}

TEST_CASE("idx: larger image values and 255 map to [0, 1]") {
  TempDir dir;
  Bytes img = idx_images(1, 1, 2);
  img[16] = 255;
  img[17] = 0;
  write_gz(dir / "i.gz", img);
  const IdxImages r = read_idx_images(dir / "i.gz");
  CHECK(r.count == 1);
  CHECK(r.pixels == Bytes{255, 0});
}

TEST_CASE("idx: wrong magic names the file, byte 0 and the expected magic") {
  TempDir dir;
  write_raw(dir / "labels-as-images", idx_labels({1, 2}));
  write_gz(dir / "train-labels-idx1-ubyte.gz", idx_images(2, 2, 2));
  const std::string m1 =
      message_of<DataError>([&] { read_idx_images(dir / "labels-as-images"); });
  CHECK_HAS(m1, "labels-as-images");
  CHECK_HAS(m1, "byte 0: magic 0x00000801, expected 0x00000803 (idx3 u8 images)");
  const std::string m2 =
      message_of<DataError>([&] { read_idx_labels(dir / "train-labels-idx1-ubyte.gz"); });
  CHECK_HAS(m2, "train-labels-idx1-ubyte.gz: byte 0: magic 0x00000803, expected 0x00000801 "
                "(idx1 u8 labels)");
  // A non-u8 type byte (0x0D = float) is also a wrong magic.
  write_raw(dir / "floats", idx_images(1, 1, 1, 0x00000D03));
  CHECK_HAS(message_of<DataError>([&] { read_idx_images(dir / "floats"); }),
            "magic 0x00000d03, expected 0x00000803");
}

TEST_CASE("idx: truncated raw files are rejected with both sizes") {
  TempDir dir;
  Bytes img = idx_images(4, 3, 3);  // 16 + 36 = 52 bytes
  img.resize(img.size() - 5);
  write_raw(dir / "cut-images", img);
  const std::string m = message_of<DataError>([&] { read_idx_images(dir / "cut-images"); });
  CHECK_HAS(m, "cut-images");
  CHECK_HAS(m, "file is 47 bytes, expected 52");
  CHECK_HAS(m, "truncated");

  const Bytes whole = idx_images(4, 3, 3);
  write_raw(dir / "cut-header", Bytes(whole.begin(), whole.begin() + 10));
  const std::string h = message_of<DataError>([&] { read_idx_images(dir / "cut-header"); });
  CHECK_HAS(h, "cut-header");
  CHECK_HAS(h, "file ends after 10 bytes");
  CHECK_HAS(h, "2 bytes into rows at byte 8; expected a 16-byte idx3 header");

  Bytes lab = idx_labels({1, 2, 3, 4});
  lab.pop_back();
  write_raw(dir / "cut-labels", lab);
  const std::string l = message_of<DataError>([&] { read_idx_labels(dir / "cut-labels"); });
  CHECK_HAS(l, "cut-labels");
  CHECK_HAS(l, "file is 11 bytes, expected 12");
}

TEST_CASE("idx: bytes past the promised size are rejected (raw and gz)") {
  TempDir dir;
  Bytes img = idx_images(2, 2, 2);
  img.push_back(0);
  write_raw(dir / "long.raw", img);
  write_gz(dir / "long.gz", img);
  CHECK_HAS(message_of<DataError>([&] { read_idx_images(dir / "long.raw"); }),
            "file is 25 bytes, expected 24");
  const std::string m = message_of<DataError>([&] { read_idx_images(dir / "long.gz"); });
  CHECK_HAS(m, "long.gz");
  CHECK_HAS(m, "byte 24: data continues past the 24 bytes expected");
}

TEST_CASE("idx: truncated .gz is rejected, not read as a clean end of file") {
  TempDir dir;
  // Enough varied bytes that the deflate stream is long: 40 images of 28×28.
  const Bytes img = idx_images(40, 28, 28);
  write_gz(dir / "full.gz", img);
  const Bytes gz = read_raw(dir / "full.gz");
  REQUIRE(gz.size() > 100);

  SUBCASE("cut in the middle of the compressed data") {
    write_raw(dir / "half.gz", Bytes(gz.begin(), gz.begin() + std::ptrdiff_t(gz.size() / 2)));
    const std::string m = message_of<DataError>([&] { read_idx_images(dir / "half.gz"); });
    CHECK_HAS(m, "half.gz");
    CHECK_HAS(m, "into the pixels at byte 16");
    CHECK_HAS(m, "truncated .gz (zlib: unexpected end of file)");
    CHECK_HAS(m, "16 + 40×28×28 = 31376 bytes");
  }
  SUBCASE("cut in the 8-byte trailer: all data decodes, the CRC and length are missing") {
    write_raw(dir / "trailer.gz", Bytes(gz.begin(), gz.end() - 4));
    const std::string m = message_of<DataError>([&] { read_idx_images(dir / "trailer.gz"); });
    CHECK_HAS(m, "trailer.gz");
    CHECK_HAS(m, "byte 31376: all 31376 bytes expected");
    CHECK_HAS(m, "gzip trailer (CRC and length) is missing");
    CHECK_HAS(m, "truncated .gz (zlib: unexpected end of file)");
  }
  SUBCASE("a corrupted byte in the compressed data") {
    Bytes bad = gz;
    for (std::size_t k = bad.size() / 2; k < bad.size() / 2 + 8; ++k) bad[k] ^= 0x5A;
    write_raw(dir / "corrupt.gz", bad);
    const std::string m = message_of<DataError>([&] { read_idx_images(dir / "corrupt.gz"); });
    CHECK_HAS(m, "corrupt.gz");
    CHECK_HAS(m, "corrupt gzip data");
    CHECK_HAS(m, "(zlib: ");
  }
}

TEST_CASE("idx: wrong dimensions name the field and what was expected") {
  TempDir dir;
  write_raw(dir / "zero-rows", idx_images(2, 0, 5));
  CHECK_HAS(message_of<DataError>([&] { read_idx_images(dir / "zero-rows"); }),
            "zero-rows: byte 8: rows 0, expected 1..65536");
  write_raw(dir / "zero-count", idx_images(0, 2, 2));
  CHECK_HAS(message_of<DataError>([&] { read_idx_images(dir / "zero-count"); }),
            "zero-count: byte 4: count 0, expected ≥ 1");
  write_raw(dir / "i27", idx_images(2, 28, 27));
  write_raw(dir / "l", idx_labels({0, 1}));
  CHECK_HAS(message_of<DataError>(
                [&] { load_idx_pair(dir / "i27", dir / "l", 10, IdxShape{28, 28}); }),
            "i27: byte 12: cols 27, expected 28");
  // Without an expected shape the same file is fine.
  CHECK(load_idx_pair(dir / "i27", dir / "l", 10).width == 27);
}

TEST_CASE("idx: image and label counts must agree") {
  TempDir dir;
  write_raw(dir / "imgs", idx_images(3, 2, 2));
  write_gz(dir / "labs.gz", idx_labels({0, 1, 0, 1}));
  const std::string m =
      message_of<DataError>([&] { load_idx_pair(dir / "imgs", dir / "labs.gz", 2); });
  CHECK_HAS(m, "labs.gz: byte 4: count 4, expected 3");
  CHECK_HAS(m, "imgs");
}

TEST_CASE("idx: a label out of range names its byte offset and example") {
  TempDir dir;
  write_raw(dir / "imgs", idx_images(4, 1, 1));
  write_raw(dir / "labs", idx_labels({9, 0, 10, 1}));
  const std::string m =
      message_of<DataError>([&] { load_idx_pair(dir / "imgs", dir / "labs", 10); });
  CHECK_HAS(m, "labs: byte 10: label 10 of example 2, expected 0..9");
  // The same labels are valid with 11 classes.
  CHECK(load_idx_pair(dir / "imgs", dir / "labs", 11).labels[2] == 10);
}

TEST_CASE("idx: a missing file names the path") {
  TempDir dir;
  CHECK_HAS(message_of<DataError>([&] { read_idx_labels(dir / "nope.gz"); }),
            "nope.gz: file not found");
}

TEST_CASE("mnist: standard names, raw or .gz, 28×28 enforced, test split from t10k") {
  TempDir dir;
  write_gz(dir / "train-images-idx3-ubyte.gz", idx_images(5, 28, 28));
  write_raw(dir / "train-labels-idx1-ubyte", idx_labels({0, 1, 2, 3, 9}));
  write_raw(dir / "t10k-images-idx3-ubyte", idx_images(2, 28, 28));
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_labels({7, 8}));
  const Dataset tr = load_mnist(Split::train, dir.path());
  CHECK(tr.size() == 5);
  CHECK(tr.name == "mnist/train");
  CHECK(tr.labels.back() == 9);
  const Dataset te = load_mnist(Split::test, dir.path());
  CHECK(te.size() == 2);
  CHECK(te.labels == std::vector<std::int32_t>{7, 8});
  CHECK(te.name == "mnist/test");

  write_gz(dir / "t10k-images-idx3-ubyte.gz", idx_images(2, 27, 28));
  std::filesystem::remove(dir / "t10k-images-idx3-ubyte");
  CHECK_HAS(message_of<DataError>([&] { load_mnist(Split::test, dir.path()); }),
            "t10k-images-idx3-ubyte.gz: byte 8: rows 27, expected 28");
}

TEST_CASE("fashion-mnist: a missing file names the path and the Debian package") {
  TempDir dir;
  const std::string m =
      message_of<DataError>([&] { load_fashion_mnist(Split::train, dir / "absent"); });
  CHECK_HAS(m, "absent/train-images-idx3-ubyte[.gz]");
  CHECK_HAS(m, "dataset-fashion-mnist");
  const std::string t = message_of<DataError>([&] { load_mnist(Split::test, dir.path()); });
  CHECK_HAS(t, "t10k-images-idx3-ubyte[.gz]");
  CHECK_HAS(t, "not found");
}

TEST_CASE("fashion-mnist: directory defaults to the Debian path, WDLAB_FASHION_MNIST_DIR overrides") {
  const char* old = std::getenv("WDLAB_FASHION_MNIST_DIR");
  const std::string saved = old ? old : "";
  ::unsetenv("WDLAB_FASHION_MNIST_DIR");
  CHECK(fashion_mnist_dir() == std::filesystem::path("/usr/share/datasets/fashion-mnist"));
  ::setenv("WDLAB_FASHION_MNIST_DIR", "/tmp/elsewhere", 1);
  CHECK(fashion_mnist_dir() == std::filesystem::path("/tmp/elsewhere"));
  ::setenv("WDLAB_FASHION_MNIST_DIR", "", 1);  // empty counts as unset
  CHECK(fashion_mnist_dir() == std::filesystem::path("/usr/share/datasets/fashion-mnist"));
  if (old)
    ::setenv("WDLAB_FASHION_MNIST_DIR", saved.c_str(), 1);
  else
    ::unsetenv("WDLAB_FASHION_MNIST_DIR");
}
