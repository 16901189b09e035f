#pragma once
// Durable whole-file writes: a reader (or a crash) sees either the old file or the new one, never a
// prefix. Checkpoints, `latest`, metrics snapshots and DONE markers go through here (DESIGN.md,
// "Run directories": written to a temporary file, fsynced, renamed).
#include <cstddef>
#include <filesystem>
#include <span>
#include <string_view>

namespace wdlab::io {

/// Replaces `target` with `contents` atomically and durably:
/// temporary `.<name>.tmp.<pid>.<n>` in the same directory (O_CREAT|O_EXCL), full write, fsync,
/// rename over `target`, fsync of the directory. On failure the temporary is removed, `target` is
/// left as it was, and DataError names the path and the system error.
void write_file_atomic(const std::filesystem::path& target, std::span<const std::byte> contents);
void write_file_atomic(const std::filesystem::path& target, std::string_view contents);

/// Deletes temporaries a crashed write_file_atomic left in `dir` (names `.<name>.tmp.<pid>.<n>`,
/// regular files only) and returns how many. Call it only on a directory this process owns, e.g.
/// when resuming a run: a concurrent writer's temporary would be deleted too.
std::size_t remove_stale_temporaries(const std::filesystem::path& dir);

/// Whether `filename` (no directory part) has the shape of a write_file_atomic temporary.
bool is_atomic_temporary_name(std::string_view filename);

}  // namespace wdlab::io
