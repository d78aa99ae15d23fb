// The error type of the host: functions that can fail return result<T>
// (or result<void>) instead of throwing, so every caller sees the failure
// and the message carries what was being done and with which file.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace spoold {

struct error {
  std::string message;
  int code = 0;  // errno where one applies, else 0
};

template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::move(value)) {}
  result(error e) : v_(std::move(e)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const error& err() const { return std::get<1>(v_); }

 private:
  std::variant<T, error> v_;
};

template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(error e) : e_(std::move(e)), failed_(true) {}
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const error& err() const { return e_; }

 private:
  error e_;
  bool failed_ = false;
};

inline error make_error(std::string message, int code = 0) { return error{std::move(message), code}; }

}  // namespace spoold
