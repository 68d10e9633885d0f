#pragma once
// Scratch folders for tests that write files (kept apart from helpers.hpp, which brings in the whole
// library, so the command-line tests compile without it).

#include <unistd.h>

#include <filesystem>
#include <string>

namespace elbo::testing {

// A fresh, empty folder under the system's temporary directory, unique to this process.
inline std::filesystem::path scratch_dir(const std::string& name) {
    namespace fs = std::filesystem;
    fs::path p = fs::temp_directory_path() / ("elbo-test-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
}

}  // namespace elbo::testing
