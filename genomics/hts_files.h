// Shared checks for the files handed to htslib, so that every reader fails the same
// clear way before htslib gets a chance to print something cryptic:
// missing/unreadable files, and the network guard for CRAM references.
#pragma once

#include <string>

namespace gm {

// Throws InputError "<path>: cannot open <what>: <reason>" unless `path` is an
// existing, readable regular file (or "-" when `allow_stdin`).
void require_readable_file(const std::string& path, const std::string& what, bool allow_stdin = false);

// True when `directory` (of a file we want to create) is writable by us.
bool directory_writable(const std::string& file_in_directory);

// Makes sure htslib never fetches a CRAM reference over the network: when REF_PATH
// is unset (htslib then falls back to the EBI server) or names a URL, it is pointed
// at a local directory that does not exist; a user's REF_CACHE is still consulted. Called before any CRAM is
// opened; process-wide (htslib reads the environment), idempotent and thread-safe.
void forbid_network_references();

}  // namespace gm
