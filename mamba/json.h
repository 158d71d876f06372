// Json: a small JSON value with a strict parser and a writer, enough for
// safetensors headers and model configs.
//
// Conventions
// - Objects keep their keys in insertion order (what a writer emits is what a
//   reader sees); duplicate keys are a parse error.
// - Numbers are doubles; integers up to 2^53 are exact, which covers every
//   byte offset of a file we write. dump() prints the shortest text that reads
//   back to the same double.
// - Strings are UTF-8; \uXXXX escapes (with surrogate pairs) are decoded, and
//   the writer escapes only what JSON requires.
// - Errors are JsonError with the byte offset of the problem.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace gm {

class JsonError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Json {
 public:
  enum class Type : uint8_t { Null, Bool, Number, String, Array, Object };
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() = default;
  Json(std::nullptr_t) {}
  Json(bool b) : v_(b) {}
  Json(double d) : v_(d) {}
  Json(int i) : v_(static_cast<double>(i)) {}
  Json(int64_t i) : v_(static_cast<double>(i)) {}
  Json(uint64_t i) : v_(static_cast<double>(i)) {}
  Json(const char* s) : v_(std::string(s)) {}
  Json(std::string s) : v_(std::move(s)) {}
  Json(Array a) : v_(std::move(a)) {}
  Json(Object o) : v_(std::move(o)) {}

  static Json array() { return Json(Array{}); }
  static Json object() { return Json(Object{}); }
  static Json parse(std::string_view text);

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is_null() const { return type() == Type::Null; }
  bool is_bool() const { return type() == Type::Bool; }
  bool is_number() const { return type() == Type::Number; }
  bool is_string() const { return type() == Type::String; }
  bool is_array() const { return type() == Type::Array; }
  bool is_object() const { return type() == Type::Object; }

  // Typed access; throws JsonError naming the expected type on a mismatch.
  bool as_bool() const;
  double as_number() const;
  // A number that is an exact integer within [lo, hi].
  int64_t as_int(int64_t lo = INT64_MIN / 2, int64_t hi = INT64_MAX / 2) const;
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

  // Object helpers. find returns null when absent; at throws JsonError naming the key.
  const Json* find(std::string_view key) const;
  const Json& at(std::string_view key) const;
  // Sets (replacing an existing key in place) and returns *this for chaining.
  Json& set(std::string key, Json value);
  // Array helper.
  Json& push(Json value);

  // Compact when indent < 0, else pretty-printed with that many spaces per level.
  std::string dump(int indent = -1) const;

  bool operator==(const Json& other) const = default;

 private:
  void dump_to(std::string& out, int indent, int level) const;
  std::variant<std::nullptr_t, bool, double, std::string, Array, Object> v_;
};

}  // namespace gm
