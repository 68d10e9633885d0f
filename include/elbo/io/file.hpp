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

// A file written in pieces and put in place atomically: the pieces go into a temporary file beside
// `path`; commit() flushes it to disk and renames it over the target. Destroyed without commit()
// (an error on the way), it removes the temporary file and leaves the target as it was.
class AtomicFile {
public:
    explicit AtomicFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp-XXXXXX") {
        fd_ = ::mkstemp(tmp_.data());
        if (fd_ < 0)
            throw Error(str("write: cannot create a temporary file beside '", path_, "': ", std::strerror(errno)));
        ::fchmod(fd_, 0644);  // mkstemp's 0600 would make checkpoints private to their writer
    }
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    ~AtomicFile() {
        if (fd_ >= 0) ::close(fd_);
        if (!committed_) ::unlink(tmp_.c_str());
    }

    void write(std::string_view bytes) {
        size_t done = 0;
        while (done < bytes.size()) {
            const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) fail();
            done += static_cast<size_t>(n);
        }
    }

    void commit() {
        const bool synced = ::fsync(fd_) == 0;
        const bool closed = ::close(fd_) == 0;
        fd_ = -1;
        if (!synced || !closed || ::rename(tmp_.c_str(), path_.c_str()) != 0) fail();
        committed_ = true;
    }

private:
    [[noreturn]] void fail() const { throw Error(str("write: cannot write '", path_, "': ", std::strerror(errno))); }

    std::string path_, tmp_;
    int fd_ = -1;
    bool committed_ = false;
};

// Writes `bytes` to `path` atomically: into a temporary file beside it, flushed to disk, then
// renamed over the target, so a reader sees the old file or the new one, never a partial one.
inline void write_file_atomically(const std::string& path, std::string_view bytes) {
    AtomicFile file(path);
    file.write(bytes);
    file.commit();
}

inline void write_file_atomically(const std::string& path, const std::vector<uint8_t>& bytes) {
    write_file_atomically(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace elbo
