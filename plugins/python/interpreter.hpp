// Starting the one CPython interpreter of a spooler process and loading the
// application into it.
#pragma once

#include <spoold/plugin.hpp>

#include <string>

#include "options.hpp"
#include "py_ref.hpp"

namespace spoold::python {

// Starts the interpreter with the options' environment, virtualenv and
// sys.path, with the GIL held by the calling thread on return. Throws
// std::runtime_error naming the cause (a bad virtualenv, libpython not
// promotable to RTLD_GLOBAL, a failed start). Once per process.
void start_interpreter(const python_options& o);

// Runs django.setup() when asked, imports the module or file, and returns
// the callable: the option's attribute, else what the module assigned to
// uwsgi.spooler. Throws std::runtime_error with the Python error, its
// file:line, and what to do; the whole traceback goes to log.
py_ref load_application(const python_options& o, const Logger& log);

// The pending Python exception as "Type: message" (module-qualified unless a
// built-in), with " (at file:line)" of its innermost frame when
// with_location; the formatted traceback in *traceback, and in *permanent
// whether it is a spoold.PermanentError. Clears the exception.
std::string take_exception(std::string* traceback, bool* permanent, bool with_location);

}  // namespace spoold::python
