// The python plugin's [queue.options], read and checked before the
// interpreter starts, so that a mistake is reported without running any of
// the application's code.
#pragma once

#include <spoold/plugin.hpp>

#include <string>
#include <utility>
#include <vector>

namespace spoold::python {

struct python_options {
  std::string module;           // dotted name, imported once
  std::string file;             // or a file to import, absolute
  std::string callable;         // a name in the module; empty = uwsgi.spooler
  std::vector<std::string> path;  // prepended to sys.path in this order, absolute
  std::string virtualenv;       // absolute; empty = none
  std::string django_settings;  // DJANGO_SETTINGS_MODULE; empty = no django.setup()
  std::vector<std::pair<std::string, std::string>> env;  // set before the interpreter starts
};

// Reads the options. Relative paths become absolute from
// the current directory (the config file's folder, where spoolers run).
// Throws std::invalid_argument naming the option and the value for an
// unknown option, a missing or doubled module/file, or a bad value.
python_options read_options(const Options& options);

}  // namespace spoold::python
