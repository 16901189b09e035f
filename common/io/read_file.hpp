#pragma once
// Whole-file reads with errors that name the file and the system's reason.
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace wdlab::io {

/// The whole file; DataError(path, strerror) when it cannot be opened or read.
std::vector<std::byte> read_file_bytes(const std::filesystem::path& path);
std::string read_file_text(const std::filesystem::path& path);

}  // namespace wdlab::io
