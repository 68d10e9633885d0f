#pragma once
// Which of a layer's gradients its backward kernel writes (=) instead of adding onto (+=): the
// ones arriving first, whose buffers hold nothing yet (autograd/var.hpp's parent_grad_to_write: a
// new buffer, or one that zero_grad() left to be read as zeros). Writing saves a pass of zeros
// before the backward and a read in it. A plain type of its own, so the CUDA module's declarations
// can take it too.

namespace elbo::kernels {

struct Assign {
    bool dx = false, dw = false, db = false;
};

}  // namespace elbo::kernels
