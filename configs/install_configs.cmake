# Run by cmake --install (configs/CMakeLists.txt sets the SPOOLD_* folders,
# relative to the prefix unless absolute): writes the unit and the example
# config with the install's own paths.
foreach(var SPOOLD_BINDIR SPOOLD_PLUGINDIR SPOOLD_UNITDIR SPOOLD_EXAMPLEDIR)
  if(NOT IS_ABSOLUTE "${${var}}")
    set(${var} "${CMAKE_INSTALL_PREFIX}/${${var}}")
  endif()
endforeach()
file(MAKE_DIRECTORY "${SPOOLD_CONFIGS_STAGE}")

file(READ "${SPOOLD_CONFIGS_SOURCE}/spoold.service" unit)
string(REPLACE "/usr/local/bin/spoold" "${SPOOLD_BINDIR}/spoold" unit "${unit}")
file(WRITE "${SPOOLD_CONFIGS_STAGE}/spoold.service" "${unit}")
file(INSTALL DESTINATION "${SPOOLD_UNITDIR}" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${SPOOLD_CONFIGS_STAGE}/spoold.service")

file(READ "${SPOOLD_CONFIGS_SOURCE}/example.toml" example)
string(REPLACE "/usr/local/lib/spoold/plugins" "${SPOOLD_PLUGINDIR}" example "${example}")
file(WRITE "${SPOOLD_CONFIGS_STAGE}/example.toml" "${example}")
file(INSTALL DESTINATION "${SPOOLD_EXAMPLEDIR}" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${SPOOLD_CONFIGS_STAGE}/example.toml")
