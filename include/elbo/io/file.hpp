#pragma once
// Files written whole and atomically: a temporary file beside the target, flushed to disk, then
// renamed over it, so a reader (or a run interrupted mid-write) sees the old file or the new one,
// never a partial one. Checkpoints, pictures, metrics and configs all go through here.

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elbo/error.hpp"

namespace elbo {

// Writes `bytes` to `path` atomically: into a temporary file beside it, flushed to disk, then
// renamed over the target, so a reader sees the old file or the new one, never a partial one.
inline void write_file_atomically(const std::string& path, std::string_view bytes) {
    std::string tmp = path + ".tmp-XXXXXX";
    const int fd = ::mkstemp(tmp.data());
    if (fd < 0) throw Error(str("write: cannot create a temporary file beside '", path, "': ", std::strerror(errno)));
    ::fchmod(fd, 0644);  // mkstemp's 0600 would make checkpoints private to their writer
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const std::string why = std::strerror(errno);
            ::close(fd);
            ::unlink(tmp.c_str());
            throw Error(str("write: cannot write '", path, "': ", why));
        }
        done += static_cast<size_t>(n);
    }
    const bool synced = ::fsync(fd) == 0;
    const bool closed = ::close(fd) == 0;
    if (!synced || !closed || ::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string why = std::strerror(errno);
        ::unlink(tmp.c_str());
        throw Error(str("write: cannot write '", path, "': ", why));
    }
}

inline void write_file_atomically(const std::string& path, const std::vector<uint8_t>& bytes) {
    write_file_atomically(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace elbo
