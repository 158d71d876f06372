// Small text helpers shared by the file readers: number formatting for messages,
// strict integer parsing, field splitting.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gm {

// 10000000 -> "10,000,000" (messages and tables).
std::string with_commas(int64_t value);

// Whole-string decimal integer (optional sign; commas allowed when `allow_commas`),
// nullopt on anything else (empty, trailing junk, overflow).
std::optional<int64_t> parse_int64(std::string_view text, bool allow_commas = false);

// Splits on one separator character; empty fields are kept.
std::vector<std::string_view> split_fields(std::string_view line, char separator);

}  // namespace gm
