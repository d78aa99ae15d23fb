#!/usr/bin/env bash
# Builds the spool-file fuzzer with clang (libFuzzer + ASan + UBSan) and runs
# it for a bounded time on a copy of the seed corpus. Exits non-zero when the
# build fails or the fuzzer finds a crash, a leak, a UBSan report or a hang;
# the input that did it is left in OUT_DIR as crash-*/leak-*/timeout-*.
#
#   tests/fuzz/run_fuzz.sh REPO_ROOT OUT_DIR        (FUZZ_SECONDS=60 by default)
#   CLANGXX=clang++-14 FUZZ_SECONDS=600 tests/fuzz/run_fuzz.sh . /tmp/fuzz
#
# To replay one input: OUT_DIR/spool_file_fuzz OUT_DIR/crash-<sha1>
# Without clang: build/bin/spool_file_replay FILE_OR_FOLDER... (any build;
# the CTest fuzz_corpus_replay runs it over the seed corpus). A crash input
# worth keeping goes into tests/fuzz/corpus/spool_file/ so every build
# replays it from then on.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 REPO_ROOT OUT_DIR" >&2
  exit 2
fi
repo=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
seconds=${FUZZ_SECONDS:-60}

cxx=${CLANGXX:-}
if [[ -z $cxx ]]; then
  for candidate in clang++ clang++-14 clang++-15 clang++-16; do
    if command -v "$candidate" > /dev/null; then cxx=$candidate; break; fi
  done
fi
if [[ -z $cxx ]]; then
  echo "$0: no clang++ found: install Debian's clang and libclang-rt-dev (or set CLANGXX)" >&2
  exit 2
fi

cd "$repo"
# -fno-sanitize-recover: a UBSan report must stop the run like a crash does.
"$cxx" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I host -I plugin_api/include \
  host/spool_file.cpp host/posix.cpp host/duration.cpp tests/fuzz/spool_file_fuzz.cpp \
  -o "$out/spool_file_fuzz"

# The fuzzer adds what it finds to its corpus directory: work on a copy so
# the committed seeds stay as make_corpus.py wrote them.
rm -rf "$out/corpus"
mkdir -p "$out/corpus"
cp tests/fuzz/corpus/spool_file/* "$out/corpus/"

status=0
"$out/spool_file_fuzz" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=70000 -len_control=20 \
  -dict=tests/fuzz/spool_file.dict -artifact_prefix="$out/" -print_final_stats=1 \
  "$out/corpus" > "$out/fuzz.log" 2>&1 || status=$?
tail -n 25 "$out/fuzz.log"
if [[ $status -ne 0 ]]; then
  echo "$0: the fuzzer failed (exit $status); see $out/fuzz.log and the crash-*/leak-*/timeout-* files in $out" >&2
  exit 1
fi
echo "$0: no crash in ${seconds}s; last status: $(grep -E '^#[0-9]+' "$out/fuzz.log" | tail -n 1)"
echo "$0: corpus now $(ls "$out/corpus" | wc -l) files in $out/corpus"
