// Cursor text formatting and strict parsing.
#include "genomics/cursor_text.h"

#include "genomics/errors.h"
#include "genomics/text.h"

namespace gm {

std::string format_cursor(const std::string& magic, const std::string& config,
                          const std::map<std::string, uint64_t>& state) {
  std::string out = magic + " " + config + " |";
  for (const auto& [key, value] : state) out += " " + key + "=" + std::to_string(value);
  return out;
}

std::map<std::string, uint64_t> parse_cursor(const std::string& cursor, const std::string& magic,
                                             const std::string& config, std::initializer_list<const char*> required) {
  if (cursor.rfind(magic + " ", 0) != 0) {
    throw InputError("the saved data cursor is not a " + magic + " cursor: '" + cursor + "'");
  }
  const std::string prefix = magic + " " + config + " |";
  if (cursor.rfind(prefix, 0) != 0) {
    throw InputError("the saved data cursor belongs to another dataset configuration (saved: '" + cursor +
                     "'; this dataset: '" + config + "')");
  }
  std::map<std::string, uint64_t> state;
  for (std::string_view field : split_fields(std::string_view(cursor).substr(prefix.size()), ' ')) {
    if (field.empty()) continue;
    const size_t eq = field.find('=');
    const auto value = eq == std::string_view::npos ? std::nullopt : parse_int64(field.substr(eq + 1));
    if (!value || *value < 0) throw InputError("malformed data cursor field '" + std::string(field) + "'");
    state[std::string(field.substr(0, eq))] = static_cast<uint64_t>(*value);
  }
  for (const char* key : required) {
    if (!state.count(key)) throw InputError(std::string("data cursor lacks '") + key + "': '" + cursor + "'");
  }
  return state;
}

}  // namespace gm
