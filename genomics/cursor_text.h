// Text form of dataset cursors: "<magic> <config key=value...> | <state key=value...>".
// The config part must match the dataset restoring the cursor exactly (so a cursor
// is never applied to a different dataset); the state part holds unsigned counters.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace gm {

std::string format_cursor(const std::string& magic, const std::string& config,
                          const std::map<std::string, uint64_t>& state);

// Parses a cursor made by format_cursor with the same magic and config; returns the
// state. Throws InputError naming what is wrong (another dataset type, another
// configuration, malformed numbers, missing keys from `required`).
std::map<std::string, uint64_t> parse_cursor(const std::string& cursor, const std::string& magic,
                                             const std::string& config, std::initializer_list<const char*> required);

}  // namespace gm
