#pragma once
// One Result<T> for the whole code base: a value or an Error. Used on the control plane (config,
// sockets at start-up); the packet path returns plain enums instead and never throws.
#include <string>
#include <utility>
#include <variant>

namespace netprobe {

// An error as data: the human-readable message, plus what code needs to act on it without parsing the
// text back. Error{"text"} builds a plain one; the named constructors add the rest.
struct Error {
  std::string message;  // complete and readable on its own (it names the path or target as well)
  std::string path;     // where in a document (a configuration key path), when it is about one
  std::string target;   // the target it concerns, when it concerns one (e.g. no route to its address)
  int sys_errno = 0;    // errno of the failed system call, when one failed

  Error() = default;
  Error(std::string text) : message(std::move(text)) {}  // NOLINT: implicit by design
  Error(const char* text) : message(text) {}             // NOLINT
  static Error at_path(std::string path, std::string text) {
    Error e(std::move(text));
    e.path = std::move(path);
    return e;
  }
  static Error for_target(std::string target, std::string text) {
    Error e(std::move(text));
    e.target = std::move(target);
    return e;
  }
  static Error system(int err, std::string text) {
    Error e(std::move(text));
    e.sys_errno = err;
    return e;
  }
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT
  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const Error& error() const { return std::get<Error>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void> spelled as Status.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  static Status success() { return {}; }
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace netprobe
