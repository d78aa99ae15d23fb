#include "options.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace spoold::python {

namespace {

constexpr std::string_view k_known = "module, file, callable, path, virtualenv, django_settings, env.NAME";

std::string current_dir() {
  std::string buf(4096, '\0');
  if (::getcwd(buf.data(), buf.size()) == nullptr) {
    throw std::invalid_argument(std::string("cannot read the current directory to resolve relative paths: ") +
                                std::strerror(errno));
  }
  buf.resize(std::strlen(buf.c_str()));
  return buf;
}

std::string absolute(const std::string& cwd, std::string_view p) {
  if (!p.empty() && p.front() == '/') return std::string(p);
  return cwd + "/" + std::string(p);
}

bool is_dotted_name(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  char prev = '.';
  for (char c : s) {
    const bool ident = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (c >= '0' && c <= '9');
    if (c == '.') {
      if (prev == '.') return false;
    } else if (!ident || (prev == '.' && c >= '0' && c <= '9')) {
      return false;
    }
    prev = c;
  }
  return true;
}

// One scalar string option, or "" when absent; an array is refused.
std::string scalar(const Options& options, std::string_view key) {
  if (!options.has(key)) return {};
  auto v = options.get(key);
  if (!v) {
    throw std::invalid_argument("option " + std::string(key) +
                                " must be a string, not an array");
  }
  if (v->empty()) {
    throw std::invalid_argument("option " + std::string(key) +
                                " is empty: remove it or give a value");
  }
  return std::string(*v);
}

}  // namespace

python_options read_options(const Options& options) {
  for (auto key : options.keys()) {
    const bool known = key == "module" || key == "file" || key == "callable" || key == "path" ||
                       key == "virtualenv" || key == "django_settings" ||
                       (key.substr(0, 4) == "env." && key.size() > 4);
    if (!known) {
      throw std::invalid_argument("unknown option '" + std::string(key) +
                                  "' for the python plugin; the known options are " + std::string(k_known));
    }
  }
  python_options o;
  const std::string cwd = current_dir();
  o.module = scalar(options, "module");
  const std::string file = scalar(options, "file");
  if (o.module.empty() == file.empty()) {
    throw std::invalid_argument("give the python plugin exactly one of the options module "
                                "(a dotted module name) or file (a path to a .py file)" +
                                (o.module.empty() ? std::string(", none is set") : std::string(", not both")));
  }
  if (!o.module.empty() && !is_dotted_name(o.module)) {
    throw std::invalid_argument("option module = '" + o.module +
                                "' is not a dotted Python module name (like myapp.tasks); for a path use the option file");
  }
  if (!file.empty()) o.file = absolute(cwd, file);
  o.callable = scalar(options, "callable");
  if (!o.callable.empty() && !is_dotted_name(o.callable)) {
    throw std::invalid_argument("option callable = '" + o.callable +
                                "' is not a Python name (or a dotted path of attributes) in the module");
  }
  std::vector<std::string_view> path = options.list("path");
  if (path.empty() && options.get("path")) path.push_back(*options.get("path"));
  for (auto p : path) {
    if (p.empty()) throw std::invalid_argument("option path holds an empty string");
    o.path.push_back(absolute(cwd, p));
  }
  const std::string venv = scalar(options, "virtualenv");
  if (!venv.empty()) o.virtualenv = absolute(cwd, venv);
  o.django_settings = scalar(options, "django_settings");
  if (!o.django_settings.empty() && !is_dotted_name(o.django_settings)) {
    throw std::invalid_argument("option django_settings = '" + o.django_settings +
                                "' is not a dotted module name (like mysite.settings)");
  }
  for (auto key : options.keys()) {
    if (key.substr(0, 4) != "env.") continue;
    const std::string name(key.substr(4));
    auto value = options.get(key);
    if (!value) throw std::invalid_argument("option env." + name + " must be a string, not an array");
    if (name.find('=') != std::string::npos || name.find('.') != std::string::npos) {
      throw std::invalid_argument("option env." + name + ": '" + name +
                                  "' is not an environment variable name");
    }
    o.env.emplace_back(name, std::string(*value));
  }
  return o;
}

}  // namespace spoold::python
