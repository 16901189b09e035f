// CIFAR-10/100 binary readers on small files the tests write.
#include <doctest/doctest.h>

#include "common/data/cifar.hpp"
#include "common/errors.hpp"
#include "tests/common/data_test_util.hpp"

using namespace wdlab;
using namespace wdlab::data;
using namespace wdlab::test;

namespace {

// data_batch_b.bin holds 2 records with labels {b, b+4 mod 10}; test_batch.bin 3 records {7,8,9}.
void write_cifar10(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  for (int b = 1; b <= 5; ++b)
    write_raw(dir / ("data_batch_" + std::to_string(b) + ".bin"),
              cifar_records({{std::uint8_t(b)}, {std::uint8_t((b + 4) % 10)}}));
  write_raw(dir / "test_batch.bin", cifar_records({{7}, {8}, {9}}));
}

}  // namespace

TEST_CASE("cifar10: batches parse in order, pixels channel-major, train and test") {
  TempDir dir;
  write_cifar10(dir.path());
  const Dataset tr = load_cifar10(Split::train, dir.path());
  CHECK(tr.name == "cifar10/train");
  CHECK(tr.size() == 10);
  CHECK(tr.channels == 3);
  CHECK(tr.height == 32);
  CHECK(tr.width == 32);
  CHECK(tr.num_classes == 10);
  CHECK(tr.coarse_labels.empty());
  CHECK(tr.labels == std::vector<std::int32_t>{1, 5, 2, 6, 3, 7, 4, 8, 5, 9});
  // Record r of its file has pixel k = (r + k) mod 256; example 3 is record 1 of batch 2.
  for (int k : {0, 1, 1023, 1024, 2048, 3071})
    CHECK(tr.image(3)[k] == float((1 + k) % 256) / 255.0f);
  // Channel-major: green pixel (y=2, x=5) is byte 1024 + 2·32 + 5 of the record.
  CHECK(tr.image(0)[1024 + 2 * 32 + 5] == float((1024 + 69) % 256) / 255.0f);
  const Dataset te = load_cifar10(Split::test, dir.path());
  CHECK(te.size() == 3);
  CHECK(te.labels == std::vector<std::int32_t>{7, 8, 9});
}

TEST_CASE("cifar10: the archive's cifar-10-batches-bin/ folder is found under the given dir") {
  TempDir dir;
  write_cifar10(dir / "cifar-10-batches-bin");
  CHECK(load_cifar10(Split::test, dir.path()).size() == 3);
}

TEST_CASE("cifar10: a size that is not a multiple of 3073 names the size and the record size") {
  TempDir dir;
  write_cifar10(dir.path());
  Bytes cut = cifar_records({{1}, {2}});
  cut.resize(cut.size() - 7);  // 6139
  write_raw(dir / "data_batch_3.bin", cut);
  const std::string m = message_of<DataError>([&] { load_cifar10(Split::train, dir.path()); });
  CHECK_HAS(m, "data_batch_3.bin");
  CHECK_HAS(m, "file size 6139 bytes is not a positive multiple of the 3073-byte CIFAR-10 record");

  write_raw(dir / "test_batch.bin", Bytes{});
  CHECK_HAS(message_of<DataError>([&] { load_cifar10(Split::test, dir.path()); }),
            "test_batch.bin: file size 0 bytes is not a positive multiple");
}

TEST_CASE("cifar: CIFAR-100 records given to the CIFAR-10 loader are called out") {
  TempDir dir;
  write_cifar10(dir.path());
  write_raw(dir / "test_batch.bin", cifar_records({{1, 2}, {3, 4}, {5, 6}}));  // 3 × 3074
  const std::string m = message_of<DataError>([&] { load_cifar10(Split::test, dir.path()); });
  CHECK_HAS(m, "test_batch.bin: file size 9222 bytes");
  CHECK_HAS(m, "multiple of 3074, the CIFAR-100 record: wrong loader?");
}

TEST_CASE("cifar10: a label out of range names the record and its byte offset") {
  TempDir dir;
  write_cifar10(dir.path());
  write_raw(dir / "test_batch.bin", cifar_records({{0}, {9}, {10}}));
  CHECK_HAS(message_of<DataError>([&] { load_cifar10(Split::test, dir.path()); }),
            "test_batch.bin: record 2 (byte 6146): label 10, expected 0..9");
}

TEST_CASE("cifar10: a missing batch names the file") {
  TempDir dir;
  write_cifar10(dir.path());
  std::filesystem::remove(dir / "data_batch_4.bin");
  const std::string m = message_of<DataError>([&] { load_cifar10(Split::train, dir.path()); });
  CHECK_HAS(m, "data_batch_4.bin: file not found");
  CHECK_HAS(m, "binary version");
}

TEST_CASE("cifar100: fine labels are the labels, coarse labels kept alongside") {
  TempDir dir;
  write_raw(dir / "train.bin", cifar_records({{19, 99}, {0, 0}, {7, 42}}));
  write_raw(dir / "test.bin", cifar_records({{3, 30}}));
  const Dataset tr = load_cifar100(Split::train, dir.path());
  CHECK(tr.name == "cifar100/train");
  CHECK(tr.num_classes == 100);
  CHECK(tr.labels == std::vector<std::int32_t>{99, 0, 42});
  CHECK(tr.coarse_labels == std::vector<std::int32_t>{19, 0, 7});
  // Pixels start after both label bytes: record 2, pixel k = (2 + k) mod 256.
  CHECK(tr.image(2)[0] == 2.0f / 255.0f);
  CHECK(tr.image(2)[3071] == float((2 + 3071) % 256) / 255.0f);
  const Dataset te = load_cifar100(Split::test, dir.path());
  CHECK(te.labels == std::vector<std::int32_t>{30});
  CHECK(te.coarse_labels == std::vector<std::int32_t>{3});
}

TEST_CASE("cifar100: each label byte is range-checked with its own bound") {
  TempDir dir;
  write_raw(dir / "train.bin", cifar_records({{0, 0}, {19, 100}}));
  CHECK_HAS(message_of<DataError>([&] { load_cifar100(Split::train, dir.path()); }),
            "train.bin: record 1 (byte 3075): fine label 100, expected 0..99");
  write_raw(dir / "train.bin", cifar_records({{0, 0}, {20, 5}}));
  CHECK_HAS(message_of<DataError>([&] { load_cifar100(Split::train, dir.path()); }),
            "train.bin: record 1 (byte 3074): coarse label 20, expected 0..19");
  Bytes cut = cifar_records({{0, 0}, {1, 1}});
  cut.pop_back();
  write_raw(dir / "train.bin", cut);
  CHECK_HAS(message_of<DataError>([&] { load_cifar100(Split::train, dir.path()); }),
            "train.bin: file size 6147 bytes is not a positive multiple of the 3074-byte "
            "CIFAR-100 record (2 label bytes + 3072 pixels)");
}

TEST_CASE("cifar100: the archive's cifar-100-binary/ folder is found, missing test.bin named") {
  TempDir dir;
  std::filesystem::create_directories(dir / "cifar-100-binary");
  write_raw(dir / "cifar-100-binary" / "test.bin", cifar_records({{1, 11}}));
  CHECK(load_cifar100(Split::test, dir.path()).labels == std::vector<std::int32_t>{11});
  CHECK_HAS(message_of<DataError>([&] { load_cifar100(Split::train, dir.path()); }),
            "cifar-100-binary/train.bin: file not found");
}

TEST_CASE("cifar: names of the variants and splits") {
  CHECK(to_string(CifarVariant::cifar10) == "CIFAR-10");
  CHECK(to_string(CifarVariant::cifar100) == "CIFAR-100");
  CHECK(cifar_record_bytes(CifarVariant::cifar10) == 3073);
  CHECK(cifar_record_bytes(CifarVariant::cifar100) == 3074);
  CHECK(to_string(Split::train) == "train");
  CHECK(to_string(Split::test) == "test");
}
