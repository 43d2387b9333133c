#pragma once
// A small JSON Schema (draft-07) validator for exactly the keywords schema/netprobe-config.schema.json uses.
// The binary enforces that very file (embedded at build time), so editors, CI linters and netprobe agree on
// what a valid configuration is. compile() refuses any keyword it does not implement: a keyword added to the
// schema file without support here fails at start-up (and in the unit tests) instead of being silently
// ignored.
//
// Supported: type (string or list; "integer" means a JSON integer, as PyYAML/pykwalify: 1.0 is not an
// integer), properties, patternProperties, additionalProperties (false or a schema), required, enum, pattern,
// minimum, maximum, exclusiveMinimum (a number, draft-06+), items (one schema), minItems, uniqueItems,
// $ref to "#/definitions/<name>" (no sibling keywords, as draft-07 ignores them), definitions.
// Ignored annotations: default, description, title, $schema, $id, examples.
#include <memory>
#include <string>
#include <vector>

#include <string_view>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace netprobe {

class SchemaValidator {
 public:
  // Compiles a schema document. The error lists every unsupported keyword or malformed value found.
  static Result<SchemaValidator> compile(const nlohmann::json& schema);
  // The same from the schema's JSON text (an embedded schema); `what` names it in the error.
  static Result<SchemaValidator> compile_text(std::string_view schema_json, std::string_view what);

  // Validates `doc` against the schema and appends one "path: message" per violation to `errors` (all of
  // them, not just the first). Paths are dotted (`targets.web.dst_port`, `global.percentile[1]`); the
  // document root is "(root)". Returns true when `doc` is valid. Thread-safe (const).
  bool validate(const nlohmann::json& doc, std::vector<std::string>* errors) const;

  SchemaValidator(SchemaValidator&&) noexcept;
  SchemaValidator& operator=(SchemaValidator&&) noexcept;
  ~SchemaValidator();

  struct Impl;

 private:
  explicit SchemaValidator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The validator of a compiled (usually function-static) schema, or nullptr with *error (if given) set.
inline const SchemaValidator* validator_or_error(const Result<SchemaValidator>& compiled,
                                                 std::string* error) {
  if (compiled.ok()) return &compiled.value();
  if (error) *error = compiled.error().message;
  return nullptr;
}

// Levenshtein distance, for "did you mean" hints.
size_t edit_distance(std::string_view a, std::string_view b);

// The closest candidate to `word` if it is close enough to be a plausible typo (case-insensitive equality,
// or an edit distance of at most 1 for short words, 2 for words of 5+ characters, 3 for 9+); else "".
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace netprobe
