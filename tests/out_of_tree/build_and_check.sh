#!/bin/sh
# Checks that a plugin builds outside the spoold tree (SPEC sections 1 and 5).
#
# usage: build_and_check.sh [--install] REPO_DIR BUILD_DIR
#
#   1. compiles hello_plugin.cpp with nothing of the project but
#      -I REPO_DIR/plugin_api/include, into BUILD_DIR/out_of_tree/libhello.so
#      (the e2e tests load it from there through spoold);
#   2. checks with nm -D that it exports spoold_plugin_entry;
#   3. if python3 is there, loads it with ctypes and drives create, init,
#      handle and destroy through the C ABI, as the host does;
#   4. with --install: `cmake --install BUILD_DIR` into a temporary prefix (so
#      BUILD_DIR must be fully built), checks what landed where, and builds
#      cmake_consumer/ against that prefix with find_package(spoold).
#
# Exits 0 when all steps pass, 1 with the failing step on stderr, 2 on bad
# usage. $CXX picks the compiler (default c++); SPOOLD_TEST_KEEP=1 keeps the
# temporary folder.
set -eu

usage() {
  echo "usage: $0 [--install] REPO_DIR BUILD_DIR" >&2
  exit 2
}

install_check=0
repo=""
build=""
for arg in "$@"; do
  case "$arg" in
    --install) install_check=1 ;;
    -*) echo "unknown option: $arg" >&2; usage ;;
    *)
      if [ -z "$repo" ]; then repo=$arg
      elif [ -z "$build" ]; then build=$arg
      else usage
      fi ;;
  esac
done
if [ -z "$repo" ] || [ -z "$build" ]; then usage; fi

here=$(cd "$(dirname "$0")" && pwd)
[ -d "$repo" ] || { echo "REPO_DIR $repo is not a directory" >&2; exit 2; }
[ -d "$build" ] || { echo "BUILD_DIR $build is not a directory: configure and build spoold first" >&2; exit 2; }
repo=$(cd "$repo" && pwd)
build=$(cd "$build" && pwd)
header_dir=$repo/plugin_api/include
[ -f "$header_dir/spoold/plugin.hpp" ] || { echo "$header_dir/spoold/plugin.hpp not found: is $repo the spoold repository?" >&2; exit 2; }

fail() {
  echo "out_of_tree: FAILED: $*" >&2
  exit 1
}
step() {
  echo "out_of_tree: $*"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/spoold-out-of-tree-XXXXXX")
cleanup() {
  if [ "${SPOOLD_TEST_KEEP:-0}" = 1 ]; then
    echo "out_of_tree: kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# $1: a shared object. Fails unless it defines and exports spoold_plugin_entry.
check_exports_entry() {
  nm -D --defined-only "$1" >"$work/nm.txt" 2>&1 || fail "nm -D $1: $(cat "$work/nm.txt")"
  awk '$2 == "T" && $3 == "spoold_plugin_entry" { found = 1 } END { exit !found }' "$work/nm.txt" ||
    fail "$1 does not export spoold_plugin_entry as a defined function (nm -D --defined-only shows: $(tr '\n' ' ' <"$work/nm.txt"))"
}

# 1. The compile line of SPEC section 5, plus warnings: the public header
#    must not make a user's -Werror build fail.
cxx=${CXX:-c++}
out_dir=$build/out_of_tree
mkdir -p "$out_dir"
plugin=$out_dir/libhello.so
step "compiling hello_plugin.cpp with $cxx and only -I $header_dir"
"$cxx" -std=c++20 -shared -fPIC -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror \
  -I "$header_dir" -o "$plugin" "$here/hello_plugin.cpp" 2>"$work/compile.txt" ||
  fail "hello_plugin.cpp does not compile against plugin_api/include alone:
$(cat "$work/compile.txt")"

# 2.
step "checking that $plugin exports spoold_plugin_entry"
check_exports_entry "$plugin"

# 3.
abi=$(sed -n 's/^#define SPOOLD_ABI_VERSION \([0-9][0-9]*\)u*$/\1/p' "$header_dir/spoold/plugin.hpp")
[ -n "$abi" ] || fail "no '#define SPOOLD_ABI_VERSION <n>u' in $header_dir/spoold/plugin.hpp"
if command -v python3 >/dev/null 2>&1; then
  step "loading $plugin and calling it through the C ABI (version $abi)"
  python3 - "$plugin" "$abi" "$work/greetings.txt" <<'PYTHON' || fail "$plugin does not work through the C ABI (see above)"
import ctypes as c
import os
import sys

path, abi, greetings = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Bytes(c.Structure):
    _fields_ = [("data", c.c_char_p), ("size", c.c_size_t)]

def text(b):
    return Bytes(b, len(b))

class Arg(c.Structure):
    _fields_ = [("key", Bytes), ("value", Bytes)]

class TaskView(c.Structure):
    _fields_ = [("struct_size", c.c_uint32), ("attempt", c.c_uint32), ("id", Bytes), ("queue", Bytes),
                ("args", c.POINTER(Arg)), ("arg_count", c.c_size_t), ("body", Bytes)]

class Option(c.Structure):
    _fields_ = [("key", Bytes), ("value", Bytes), ("index", c.c_int32)]

LOG = c.CFUNCTYPE(None, c.c_void_p, c.c_int32, c.POINTER(c.c_char), c.c_size_t)

class InitView(c.Structure):
    _fields_ = [("struct_size", c.c_uint32), ("queue", Bytes), ("options", c.POINTER(Option)),
                ("option_count", c.c_size_t), ("log_context", c.c_void_p), ("log", LOG)]

class ErrorBuffer(c.Structure):
    _fields_ = [("data", c.c_void_p), ("capacity", c.c_size_t), ("size", c.c_size_t)]

E = c.POINTER(ErrorBuffer)

class Entry(c.Structure):
    _fields_ = [("abi_version", c.c_uint32), ("struct_size", c.c_uint32),
                ("create", c.CFUNCTYPE(c.c_void_p, E)),
                ("init", c.CFUNCTYPE(c.c_int32, c.c_void_p, c.POINTER(InitView), E)),
                ("handle", c.CFUNCTYPE(c.c_int32, c.c_void_p, c.POINTER(TaskView), E)),
                ("destroy", c.CFUNCTYPE(None, c.c_void_p))]

def check(ok, what):
    if not ok:
        print("  " + what, file=sys.stderr)
        sys.exit(1)

lib = c.CDLL(path, mode=os.RTLD_NOW | os.RTLD_LOCAL)
lib.spoold_plugin_entry.restype = c.POINTER(Entry)
entry_ptr = lib.spoold_plugin_entry()
check(bool(entry_ptr), "spoold_plugin_entry() returned null")
entry = entry_ptr.contents
check(entry.abi_version == abi, "abi_version is %d, the header says %d" % (entry.abi_version, abi))
check(entry.struct_size == c.sizeof(Entry),
      "struct_size is %d, spoold_plugin_v1 is %d bytes" % (entry.struct_size, c.sizeof(Entry)))

buffer = c.create_string_buffer(1024)
error = ErrorBuffer(c.cast(buffer, c.c_void_p), len(buffer), 0)
def error_text():
    return buffer.raw[:error.size].decode(errors="replace")

instance = entry.create(c.byref(error))
check(instance, "create() failed: " + error_text())
logs = []
sink = LOG(lambda context, level, message, size: logs.append(c.string_at(message, size)))
options = (Option * 1)(Option(text(b"greeting_file"), text(greetings.encode()), -1))
view = InitView(c.sizeof(InitView), text(b"oot"), options, 1, None, sink)
check(entry.init(instance, c.byref(view), c.byref(error)) == 0, "init() failed: " + error_text())
check(any(b"greeting into" in line for line in logs), "init() logged nothing through the host's sink")

args = (Arg * 1)(Arg(text(b"name"), text(b"out of tree")))
task = TaskView(c.sizeof(TaskView), 0, text(b"uwsgi_spoolfile_on_oot_1_1_1_1_1"), text(b"oot"), args, 1, text(b""))
status = entry.handle(instance, c.byref(task), c.byref(error))
check(status == -2, "handle() returned %d, not Ok (-2): %s" % (status, error_text()))
entry.destroy(instance)
with open(greetings) as f:
    written = f.read()
check(written == "hello, out of tree from oot\n", "the plugin wrote %r" % written)
PYTHON
else
  step "python3 not found: skipping the load check"
fi

[ "$install_check" = 1 ] || { step "passed"; exit 0; }

# 4.
prefix=$work/prefix
step "installing $build into $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.txt" 2>&1 ||
  fail "cmake --install $build failed (is the build complete?):
$(cat "$work/install.txt")"
[ -f "$prefix/include/spoold/plugin.hpp" ] || fail "the install has no include/spoold/plugin.hpp"
config=$(find "$prefix" -path '*/cmake/spoold/spooldConfig.cmake' | head -n 1)
[ -n "$config" ] || fail "the install has no <libdir>/cmake/spoold/spooldConfig.cmake"
for name in log_writer dispatch sleep exec; do
  shipped=$(find "$prefix" -path "*/spoold/plugins/lib$name.so" | head -n 1)
  [ -n "$shipped" ] || fail "the install has no <libdir>/spoold/plugins/lib$name.so"
  check_exports_entry "$shipped"
done
fixtures=$(find "$prefix" -name 'libfx_*' | head -n 1)
[ -z "$fixtures" ] || fail "test fixtures were installed: $fixtures"

step "building cmake_consumer/ against the installed package"
consumer=$work/consumer
cmake -S "$here/cmake_consumer" -B "$consumer" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
  >"$work/configure.txt" 2>&1 || fail "configuring cmake_consumer/ failed:
$(cat "$work/configure.txt")"
cmake --build "$consumer" >"$work/build.txt" 2>&1 || fail "building cmake_consumer/ failed:
$(cat "$work/build.txt")"
grep -q -- "$prefix/include" "$consumer/compile_commands.json" ||
  fail "the consumer did not compile with $prefix/include: $(cat "$consumer/compile_commands.json")"
! grep -q -- "$header_dir" "$consumer/compile_commands.json" ||
  fail "the consumer compiled with the source tree's $header_dir instead of the installed headers"
check_exports_entry "$consumer/libhello.so"
step "passed"
