#pragma once
// field_count<T>(): the number of members of an aggregate, counted at compile time by how many
// initializers T{...} accepts. Hand-kept lists of a struct's fields (config/config_fields.h) assert on it, so
// a member added to the struct and forgotten in the list fails to build instead of being silently dropped.
#include <cstddef>
#include <type_traits>
#include <utility>

namespace netprobe {
namespace detail {

struct AnyField {
  template <typename T>
  operator T() const;  // never defined: used in unevaluated context only
};

template <typename T, typename... Args>
concept BraceConstructible = requires {
  T{std::declval<Args>()...};
};

template <typename T, typename... Args>
constexpr size_t count_fields() {
  if constexpr (BraceConstructible<T, Args..., AnyField>) {
    return count_fields<T, Args..., AnyField>();
  } else {
    return sizeof...(Args);
  }
}

}  // namespace detail

template <typename T>
requires std::is_aggregate_v<T>
constexpr size_t field_count() { return detail::count_fields<T>(); }

}  // namespace netprobe
