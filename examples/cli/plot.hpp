#pragma once
// Charts as SVG: series of (x, y) points drawn as lines, points or both, with optional error bars,
// on shared axes (y on a log scale when every value is positive and they span more than a factor
// of 20), labelled ticks and a legend. A run's loss curves (`elbo train`) and a study's metric
// curves (`elbo plot`, which benchmarks/study.py calls) are both drawn here.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "elbo/error.hpp"

namespace elbo::cli {

struct Series {
    std::string name, colour;
    std::vector<double> y;
    std::vector<double> x;        // one per value in y
    std::vector<double> y_error;  // empty, or one half-length of an error bar per point
    std::string style = "line";   // "line", "points" or "line+points"
};

struct Plot {
    std::string title, x_label = "step", y_label;
    std::vector<Series> series;
    bool allow_log_scale = true;
};

// Colours for series that name none, in order.
inline const char* palette(size_t k) {
    static const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"};
    return colours[k % std::size(colours)];
}

inline std::string plot_svg(const Plot& p) {
    const double W = 720, H = 400, left = 70, right = 20, top = 40, bottom = 50;
    for (const Series& s : p.series)
        check(s.x.size() == s.y.size() && (s.y_error.empty() || s.y_error.size() == s.y.size()) &&
                  (s.style == "line" || s.style == "points" || s.style == "line+points"),
              "plot", "series '", s.name, "' needs as many x as y values (", s.x.size(), " and ", s.y.size(),
              "), as many y_error or none (", s.y_error.size(), "), and style line, points or line+points (got '",
              s.style, "')");
    double lo = INFINITY, hi = -INFINITY, x0 = INFINITY, x1 = -INFINITY;
    for (const Series& s : p.series)
        for (size_t i = 0; i < s.y.size(); ++i) {
            if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) continue;
            const double e = s.y_error.empty() || !std::isfinite(s.y_error[i]) ? 0.0 : s.y_error[i];
            lo = std::min(lo, s.y[i] - e), hi = std::max(hi, s.y[i] + e);
            x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
        }
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (!(x0 <= x1)) x0 = 0, x1 = 1;
    if (x1 - x0 < 1e-12) x0 -= 0.5, x1 += 0.5;
    const bool log_scale = p.allow_log_scale && lo > 0 && hi / lo > 20;
    auto fy = [&](double v) { return log_scale ? std::log10(v) : v; };
    double y0 = fy(lo), y1 = fy(hi);
    if (y1 - y0 < 1e-12) y0 -= 0.5, y1 += 0.5;
    const double pad = 0.05 * (y1 - y0);
    y0 -= pad, y1 += pad;
    auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (W - left - right); };
    auto py = [&](double v) { return top + (y1 - fy(v)) / (y1 - y0) * (H - top - bottom); };
    auto label = [](double v) {
        char text[32];
        std::snprintf(text, sizeof text, "%.6g", v);
        return std::string(text);
    };

    std::string svg = str("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", W, "\" height=\"", H,
                          "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
                          "<text x=\"", W / 2, "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">", p.title, "</text>\n");
    for (int t = 0; t <= 5; ++t) {  // y ticks
        const double y = y0 + (y1 - y0) * t / 5, v = log_scale ? std::pow(10.0, y) : y, yy = py(v);
        svg += str("<line x1=\"", left, "\" x2=\"", W - right, "\" y1=\"", yy, "\" y2=\"", yy, "\" stroke=\"#ddd\"/>",
                   "<text x=\"", left - 6, "\" y=\"", yy + 4, "\" text-anchor=\"end\">", label(v), "</text>\n");
    }
    for (int t = 0; t <= 5; ++t) {  // x ticks
        const double x = x0 + (x1 - x0) * t / 5;
        svg += str("<text x=\"", px(x), "\" y=\"", H - bottom + 18, "\" text-anchor=\"middle\">", label(x), "</text>\n");
    }
    svg += str("<text x=\"", (left + W - right) / 2, "\" y=\"", H - 10, "\" text-anchor=\"middle\">", p.x_label,
               "</text>\n");
    svg += str("<text x=\"16\" y=\"", (top + H - bottom) / 2, "\" transform=\"rotate(-90 16 ", (top + H - bottom) / 2,
               ")\" text-anchor=\"middle\">", p.y_label, log_scale ? " (log scale)" : "", "</text>\n");
    for (size_t k = 0; k < p.series.size(); ++k) {
        const Series& s = p.series[k];
        const std::string colour = s.colour.empty() ? palette(k) : s.colour;
        auto drawn = [&](size_t i) {
            return std::isfinite(s.x[i]) && std::isfinite(s.y[i]) && (!log_scale || s.y[i] > 0);
        };
        if (s.style != "points") {
            std::string points;
            for (size_t i = 0; i < s.y.size(); ++i)
                if (drawn(i)) points += str(px(s.x[i]), ",", py(s.y[i]), " ");
            svg += str("<polyline fill=\"none\" stroke=\"", colour, "\" stroke-width=\"1.5\" points=\"", points, "\"/>\n");
        }
        for (size_t i = 0; i < s.y.size(); ++i) {
            if (!drawn(i)) continue;
            if (!s.y_error.empty() && std::isfinite(s.y_error[i]) && s.y_error[i] > 0) {
                const double a = py(s.y[i] + s.y_error[i]), b = py(log_scale ? std::max(s.y[i] - s.y_error[i], lo) : s.y[i] - s.y_error[i]);
                svg += str("<line x1=\"", px(s.x[i]), "\" x2=\"", px(s.x[i]), "\" y1=\"", a, "\" y2=\"", b, "\" stroke=\"",
                           colour, "\"/>\n");
            }
            if (s.style != "line")
                svg += str("<circle cx=\"", px(s.x[i]), "\" cy=\"", py(s.y[i]), "\" r=\"3.5\" fill=\"", colour, "\"/>\n");
        }
        svg += str("<text x=\"", W - right - 110, "\" y=\"", top + 16 + 16 * k, "\" fill=\"", colour, "\">", s.name,
                   "</text>\n");
    }
    return svg + "</svg>\n";
}

// Charts one above the other in one SVG.
inline std::string stack_svg(const std::vector<std::string>& charts) {
    const double W = 720, H = 400;  // plot_svg's size
    std::string svg = str("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", W, "\" height=\"", H * charts.size(),
                          "\">\n");
    for (size_t k = 0; k < charts.size(); ++k) {
        std::string chart = charts[k];
        chart.replace(0, 4, str("<svg y=\"", H * k, "\""));  // nested, shifted down
        svg += chart;
    }
    return svg + "</svg>\n";
}

// A run's loss curves: each series' values over the shared training steps; below them, when given,
// the health panels: the latents (active units, latents carrying KL) and the VAE's gradient norm.
inline std::string loss_plot_svg(const std::vector<double>& steps, std::vector<Series> series, const std::string& title,
                                 std::vector<Series> latents = {}, std::vector<Series> gradients = {}) {
    for (std::vector<Series>* panel : {&series, &latents, &gradients})
        for (Series& s : *panel) s.x = steps;
    const std::string loss =
        plot_svg({.title = title, .x_label = "step", .y_label = "nats per image", .series = std::move(series)});
    if (latents.empty() && gradients.empty()) return loss;
    return stack_svg({loss,
                      plot_svg({.title = "latents", .x_label = "step", .y_label = "latents", .series = std::move(latents),
                                .allow_log_scale = false}),
                      plot_svg({.title = "gradient", .x_label = "step", .y_label = "norm", .series = std::move(gradients)})});
}

}  // namespace elbo::cli
