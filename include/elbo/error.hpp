#pragma once
// elbo::Error and the one check helper every layer uses.
//
// A user-facing mistake (a shape, a file, an option) throws elbo::Error whose message names the
// operation, what it expected and what came, e.g.
//   conv2d: input has 3 channels, weight expects 1 (input [8,3,64,64], weight [32,1,4,4])
// `assert` is kept for internal invariants only.

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace elbo {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Joins the arguments with operator<< into one string.
template <class... Args>
std::string str(Args&&... args) {
    std::ostringstream out;
    (out << ... << std::forward<Args>(args));
    return out.str();
}

// Throws Error("op: <message>") when `ok` is false. The message parts are only formatted on failure,
// but they are evaluated always: pass nothing that is only valid when `ok` holds.
template <class... Args>
void check(bool ok, const char* op, Args&&... message) {
    if (!ok) throw Error(str(op, ": ", std::forward<Args>(message)...));
}

}  // namespace elbo
