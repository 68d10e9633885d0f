#pragma once
// Scratch folders for tests that write files, and the `elbo` program run from a test (kept apart
// from helpers.hpp, which brings in the whole library, so the command-line tests compile without it).

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
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

#ifdef ELBO_CLI  // the path of the `elbo` program, which the test targets that run it define

struct Result {
    int status = -1;
    std::string out, err;
};

inline std::string read_text(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// Runs `command` in the shell, its output captured in files under `dir`.
inline Result run_command(const std::string& command_line, const std::filesystem::path& dir) {
    const std::string command = command_line + " > " + (dir / "stdout").string() + " 2> " + (dir / "stderr").string();
    const int s = std::system(command.c_str());
    Result r;
    r.status = WIFEXITED(s) ? WEXITSTATUS(s) : -1;
    r.out = read_text(dir / "stdout");
    r.err = read_text(dir / "stderr");
    return r;
}

// Runs `elbo ARGS` in the shell, its output captured in files under `dir`.
inline Result run_elbo(const std::string& args, const std::filesystem::path& dir) {
    return run_command(std::string(ELBO_CLI) + " " + args, dir);
}

#endif

}  // namespace elbo::testing
