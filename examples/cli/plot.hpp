#pragma once
// The loss curves of a run as an SVG line chart: one polyline per series over the training step,
// a shared y axis (log scale when the values span more than a factor of 20), labelled ticks.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "elbo/error.hpp"

namespace elbo::cli {

struct Series {
    std::string name, colour;
    std::vector<double> values;  // one per step in `steps`
};

inline std::string loss_plot_svg(const std::vector<double>& steps, const std::vector<Series>& series,
                                 const std::string& title) {
    const double W = 720, H = 400, left = 70, right = 20, top = 40, bottom = 50;
    double lo = INFINITY, hi = -INFINITY;
    for (const Series& s : series)
        for (double v : s.values)
            if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    const double x0 = steps.empty() ? 0 : steps.front(), x1 = steps.empty() ? 1 : std::max(steps.back(), x0 + 1);
    if (!(lo <= hi)) lo = 0, hi = 1;
    const bool log_scale = lo > 0 && hi / lo > 20;
    auto fy = [&](double v) { return log_scale ? std::log10(v) : v; };
    double y0 = fy(lo), y1 = fy(hi);
    if (y1 - y0 < 1e-12) y0 -= 0.5, y1 += 0.5;
    const double pad = 0.05 * (y1 - y0);
    y0 -= pad, y1 += pad;
    auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (W - left - right); };
    auto py = [&](double v) { return top + (y1 - fy(v)) / (y1 - y0) * (H - top - bottom); };

    std::string svg = str("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", W, "\" height=\"", H,
                          "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
                          "<text x=\"", W / 2, "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">", title, "</text>\n");
    for (int t = 0; t <= 5; ++t) {  // y ticks
        const double y = y0 + (y1 - y0) * t / 5, v = log_scale ? std::pow(10.0, y) : y, yy = py(v);
        char label[32];
        std::snprintf(label, sizeof label, "%.4g", v);
        svg += str("<line x1=\"", left, "\" x2=\"", W - right, "\" y1=\"", yy, "\" y2=\"", yy, "\" stroke=\"#ddd\"/>",
                   "<text x=\"", left - 6, "\" y=\"", yy + 4, "\" text-anchor=\"end\">", label, "</text>\n");
    }
    for (int t = 0; t <= 5; ++t) {  // x ticks
        const double x = x0 + (x1 - x0) * t / 5, xx = px(x);
        svg += str("<text x=\"", xx, "\" y=\"", H - bottom + 18, "\" text-anchor=\"middle\">", std::llround(x), "</text>\n");
    }
    svg += str("<text x=\"", (left + W - right) / 2, "\" y=\"", H - 10, "\" text-anchor=\"middle\">step</text>\n");
    svg += str("<text x=\"16\" y=\"", (top + H - bottom) / 2, "\" transform=\"rotate(-90 16 ", (top + H - bottom) / 2,
               ")\" text-anchor=\"middle\">nats per image", log_scale ? " (log scale)" : "", "</text>\n");
    for (size_t k = 0; k < series.size(); ++k) {
        const Series& s = series[k];
        std::string points;
        for (size_t i = 0; i < std::min(steps.size(), s.values.size()); ++i)
            if (std::isfinite(s.values[i]) && (!log_scale || s.values[i] > 0))
                points += str(px(steps[i]), ",", py(s.values[i]), " ");
        svg += str("<polyline fill=\"none\" stroke=\"", s.colour, "\" stroke-width=\"1.5\" points=\"", points, "\"/>\n");
        svg += str("<text x=\"", W - right - 90, "\" y=\"", top + 16 + 16 * k, "\" fill=\"", s.colour, "\">", s.name, "</text>\n");
    }
    return svg + "</svg>\n";
}

}  // namespace elbo::cli
