// Replays inputs through the fuzz target's LLVMFuzzerTestOneInput without
// libFuzzer, so every build (GCC, the sanitizer build) runs the seed corpus
// and any crash file a fuzz run left behind as a plain test:
//
//   spool_file_replay PATH...    each PATH a file, or a folder whose regular files are replayed
//
// The target calls abort() on a broken invariant, which kills this process
// and fails the test. Exits 0 after replaying at least one input, 1 when a
// path cannot be read or holds no input (an empty corpus proves nothing),
// 2 without arguments.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

// The inputs under path, sorted so a run is repeatable; false on an error.
bool collect_inputs(const fs::path& path, std::vector<fs::path>& out) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    out.push_back(path);
    return true;
  }
  if (!fs::is_directory(path, ec)) {
    std::fprintf(stderr, "spool_file_replay: %s is neither a file nor a folder\n", path.c_str());
    return false;
  }
  std::vector<fs::path> found;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) found.push_back(it->path());
  }
  if (ec) {
    std::fprintf(stderr, "spool_file_replay: cannot list %s: %s\n", path.c_str(), ec.message().c_str());
    return false;
  }
  std::sort(found.begin(), found.end());
  out.insert(out.end(), found.begin(), found.end());
  return true;
}

bool read_input(const fs::path& path, std::vector<std::uint8_t>& bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE_OR_FOLDER...\n", argv[0]);
    return 2;
  }
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    if (!collect_inputs(argv[i], inputs)) return 1;
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "spool_file_replay: no input files under the given paths\n");
    return 1;
  }
  std::size_t bytes_total = 0;
  std::vector<std::uint8_t> bytes;
  for (const auto& path : inputs) {
    if (!read_input(path, bytes)) {
      std::fprintf(stderr, "spool_file_replay: cannot read %s\n", path.c_str());
      return 1;
    }
    // Printed before the call: when an input aborts, the last line names it.
    std::printf("replaying %s (%zu bytes)\n", path.c_str(), bytes.size());
    std::fflush(stdout);
    // A copy of exactly the input's size, so ASan sees a read past its end.
    std::vector<std::uint8_t> exact(bytes.begin(), bytes.end());
    LLVMFuzzerTestOneInput(exact.empty() ? nullptr : exact.data(), exact.size());
    bytes_total += bytes.size();
  }
  std::printf("spool_file_replay: %zu inputs (%zu bytes) replayed, no invariant broken\n", inputs.size(), bytes_total);
  return 0;
}
