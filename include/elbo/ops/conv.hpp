#pragma once
// conv2d and conv_transpose2d, as torch.nn.functional's, with square stride, padding and dilation,
// and an activation of their output if asked (ops/common.hpp):
//   conv2d(x, w, b, {.stride = 2, .padding = 1})
//   conv2d(x, w, b, {.stride = 2, .padding = 1}, Activation::relu())   relu(conv2d(...)), one op

#include "elbo/kernels/cpu/conv_transpose2d.hpp"
#include "elbo/ops/common.hpp"

namespace elbo {

struct Conv2dOptions {
    int64_t stride = 1;
    int64_t padding = 0;
    int64_t dilation = 1;
};

struct ConvTranspose2dOptions {
    int64_t stride = 1;
    int64_t padding = 0;
    int64_t output_padding = 0;
    int64_t dilation = 1;
};

namespace detail {

// Checks what conv2d and conv_transpose2d share: one device, ranks, hyper-parameters, bias.
// Returns the device.
template <class T>
Device check_conv_operands(const char* op, const Var<T>& x, const Var<T>& w, const Var<T>& b,
                           int64_t stride, int64_t padding, int64_t dilation, int64_t bias_size) {
    const Device device = require_one_device<T>(op, {&x, &w, &b});
    check(x.shape().rank() == 4, op, "expected input [N, C, H, W], got ", x.shape());
    check(w.shape().rank() == 4, op, "expected a weight of rank 4, got ", w.shape());
    check(stride > 0, op, "stride must be positive, got ", stride);
    check(padding >= 0, op, "padding must be non-negative, got ", padding);
    check(dilation > 0, op, "dilation must be positive, got ", dilation);
    if (b.defined())
        check(b.shape() == Shape{bias_size}, op, "expected bias [", bias_size, "], got ", b.shape());
    return device;
}

}  // namespace detail

// x [N, C, H, W], w [O, C, kh, kw], b [O] or empty  ->  act([N, O, Ho, Wo])
// Ho = (H + 2*padding - dilation*(kh-1) - 1) / stride + 1, likewise Wo.
template <class T>
Var<T> conv2d(const Var<T>& x, const Var<T>& w, const Var<T>& b = {}, Conv2dOptions opt = {},
              const Activation& act = {}) {
    const char* op = "conv2d";
    const Device device = detail::check_conv_operands(op, x, w, b, opt.stride, opt.padding, opt.dilation,
                                                      w.shape().rank() == 4 ? w.shape()[0] : 0);
    const Shape& xs = x.shape();
    const Shape& ws = w.shape();
    check(xs[1] == ws[1], op, "input has ", xs[1], " channels, weight expects ", ws[1], " (input ", xs,
          ", weight ", ws, ")");
    kernels::Conv2dShape s{xs[0], xs[1], xs[2], xs[3], ws[0], 0, 0, ws[2], ws[3],
                           opt.stride, opt.padding, opt.dilation};
    const int64_t reach_h = opt.dilation * (s.kh - 1) + 1, reach_w = opt.dilation * (s.kw - 1) + 1;
    check(xs[2] + 2 * opt.padding >= reach_h && xs[3] + 2 * opt.padding >= reach_w, op,
          "padded input ", xs[2] + 2 * opt.padding, "x", xs[3] + 2 * opt.padding,
          " is smaller than the dilated kernel ", reach_h, "x", reach_w, " (input ", xs, ", weight ", ws,
          ", padding ", opt.padding, ", dilation ", opt.dilation, ")");
    s.Ho = (s.H + 2 * s.padding - reach_h) / s.stride + 1;
    s.Wo = (s.W + 2 * s.padding - reach_w) / s.stride + 1;

    return detail::layer_op(
        op, device, Shape{s.N, s.O, s.Ho, s.Wo}, x, w, b, act,
        [s](Device d, T* y, const T* xd, const T* wd, const T* bd, const Activation& a) {
            ELBO_KERNEL(d, conv2d_forward, y, xd, wd, bd, s, a);
        },
        [s](Device d, T* dx, T* dw, T* db, const kernels::Assign& assign, const T* dy, const T* xd, const T* wd) {
            ELBO_KERNEL(d, conv2d_backward, dx, dw, db, dy, xd, wd, s, assign);
        });
}

// x [N, Ci, H, W], w [Ci, Co, kh, kw], b [Co] or empty  ->  act([N, Co, Ho, Wo])
// Ho = (H - 1)*stride - 2*padding + dilation*(kh - 1) + output_padding + 1, likewise Wo.
template <class T>
Var<T> conv_transpose2d(const Var<T>& x, const Var<T>& w, const Var<T>& b = {},
                        ConvTranspose2dOptions opt = {}, const Activation& act = {}) {
    const char* op = "conv_transpose2d";
    const Device device = detail::check_conv_operands(op, x, w, b, opt.stride, opt.padding, opt.dilation,
                                                      w.shape().rank() == 4 ? w.shape()[1] : 0);
    const Shape& xs = x.shape();
    const Shape& ws = w.shape();
    check(xs[1] == ws[0], op, "input has ", xs[1], " channels, weight expects ", ws[0], " (input ", xs,
          ", weight ", ws, ")");
    check(opt.output_padding >= 0 && (opt.output_padding < opt.stride || opt.output_padding < opt.dilation),
          op, "output_padding must be non-negative and smaller than stride or dilation, got ",
          opt.output_padding, " (stride ", opt.stride, ", dilation ", opt.dilation, ")");
    const int64_t Ho = (xs[2] - 1) * opt.stride - 2 * opt.padding + opt.dilation * (ws[2] - 1) +
                       opt.output_padding + 1;
    const int64_t Wo = (xs[3] - 1) * opt.stride - 2 * opt.padding + opt.dilation * (ws[3] - 1) +
                       opt.output_padding + 1;
    check(Ho > 0 && Wo > 0, op, "output would be ", Ho, "x", Wo, ": padding ", opt.padding,
          " is too large for input ", xs, " and weight ", ws);
    // The underlying conv2d runs from the output (y-sized) to the input (x-sized).
    const kernels::Conv2dShape s{xs[0], ws[1], Ho, Wo, ws[0], xs[2], xs[3], ws[2], ws[3],
                                 opt.stride, opt.padding, opt.dilation};

    return detail::layer_op(
        op, device, Shape{s.N, s.C, Ho, Wo}, x, w, b, act,
        [s](Device d, T* y, const T* xd, const T* wd, const T* bd, const Activation& a) {
            ELBO_KERNEL(d, conv_transpose2d_forward, y, xd, wd, bd, s, a);
        },
        [s](Device d, T* dx, T* dw, T* db, const kernels::Assign& assign, const T* dy, const T* xd, const T* wd) {
            ELBO_KERNEL(d, conv_transpose2d_backward, dx, dw, db, dy, xd, wd, s, assign);
        });
}

}  // namespace elbo
