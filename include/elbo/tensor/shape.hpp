#pragma once
// Shape: the sizes of a tensor's dimensions, outermost first (NCHW for images).

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

#include "elbo/error.hpp"

namespace elbo {

class Shape {
public:
    Shape() = default;
    Shape(std::initializer_list<int64_t> dims) : dims_(dims) { validate(); }
    explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) { validate(); }

    int64_t rank() const { return static_cast<int64_t>(dims_.size()); }
    int64_t operator[](int64_t i) const { return dims_[static_cast<size_t>(i)]; }
    const std::vector<int64_t>& dims() const { return dims_; }

    // The number of elements: the product of the sizes (1 for a scalar of rank 0).
    int64_t numel() const {
        int64_t n = 1;
        for (int64_t d : dims_) n *= d;
        return n;
    }

    // Resolves a possibly negative axis (-1 is the last) and checks it is in range.
    int64_t axis(int64_t a, const char* op) const {
        int64_t r = a < 0 ? a + rank() : a;
        check(r >= 0 && r < rank(), op, "axis ", a, " is out of range for shape ", *this);
        return r;
    }

    // Product of the sizes in [begin, end).
    int64_t span(int64_t begin, int64_t end) const {
        int64_t n = 1;
        for (int64_t i = begin; i < end; ++i) n *= dims_[static_cast<size_t>(i)];
        return n;
    }

    friend bool operator==(const Shape&, const Shape&) = default;

    friend std::ostream& operator<<(std::ostream& out, const Shape& s) {
        out << '[';
        for (size_t i = 0; i < s.dims_.size(); ++i) out << (i ? "," : "") << s.dims_[i];
        return out << ']';
    }

    std::string to_string() const { return str(*this); }

private:
    void validate() const {
        for (int64_t d : dims_) check(d >= 0, "Shape", "sizes must be non-negative, got ", *this);
    }

    std::vector<int64_t> dims_;
};

}  // namespace elbo
