# spoold_add_plugin(<name> <sources>... [OUTPUT_DIRECTORY <dir>] [EXPORT_MAP <file>] [NO_INSTALL])
#
# Builds lib<name>.so as the host expects it: a MODULE (loaded with dlopen,
# never linked against) that exports only spoold_plugin_entry, links nothing
# of the host and leaves no symbol undefined. The target is spoold_plugin_<name>.
# Shipped plugins go to ${SPOOLD_PLUGIN_OUTPUT_DIR} and are installed to
# <libdir>/spoold/plugins; test fixtures pass their own OUTPUT_DIRECTORY and
# NO_INSTALL, and a fixture that must export something else its EXPORT_MAP.
include_guard(GLOBAL)

set(SPOOLD_PLUGINS_SOURCE_DIR ${CMAKE_CURRENT_LIST_DIR} CACHE INTERNAL
    "plugins/: the export map and common/, the header-only helpers shared by plugins")

function(spoold_add_plugin name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "NO_INSTALL" "OUTPUT_DIRECTORY;EXPORT_MAP" "")
  if(NOT arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "spoold_add_plugin(${name}): list the plugin's source files")
  endif()
  if(NOT arg_OUTPUT_DIRECTORY)
    set(arg_OUTPUT_DIRECTORY ${SPOOLD_PLUGIN_OUTPUT_DIR})
  endif()
  if(NOT arg_EXPORT_MAP)
    set(arg_EXPORT_MAP ${SPOOLD_PLUGINS_SOURCE_DIR}/spoold_plugin.map)
  endif()

  set(target spoold_plugin_${name})
  add_library(${target} MODULE ${arg_UNPARSED_ARGUMENTS})
  target_link_libraries(${target} PRIVATE spoold_plugin_api)
  target_include_directories(${target} PRIVATE ${SPOOLD_PLUGINS_SOURCE_DIR})
  set_target_properties(${target} PROPERTIES
    PREFIX "lib"
    OUTPUT_NAME ${name}
    LIBRARY_OUTPUT_DIRECTORY ${arg_OUTPUT_DIRECTORY}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  # Hidden visibility keeps our own code private; the version script also
  # drops what libstdc++'s headers force into the dynamic table (why it
  # matters: see spoold_plugin.map).
  target_link_options(${target} PRIVATE LINKER:--version-script=${arg_EXPORT_MAP})
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS ${arg_EXPORT_MAP})
  # A symbol missing at link time would otherwise surface as a dlopen error
  # in a spooler process on a production host. The sanitizer runtimes are
  # resolved from the executable, so the check is off in sanitizer builds.
  if(NOT SPOOLD_SANITIZE)
    target_link_options(${target} PRIVATE LINKER:-z,defs)
  endif()

  if(NOT arg_NO_INSTALL)
    install(TARGETS ${target} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/spoold/plugins)
  endif()
endfunction()
