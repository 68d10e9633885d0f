#pragma once
// to_dot(): the recorded graph of a Var as Graphviz DOT, for `dot -Tsvg`.
//
// Each node is drawn with its op and shape; leaves that require a gradient (parameters, inputs)
// are boxes, constants are grey, and edges point from inputs to the results computed from them.

#include <sstream>
#include <string>
#include <unordered_map>

#include "elbo/autograd/backward.hpp"

namespace elbo {

// `names` labels nodes the reader knows (e.g. {&w.node(), "w"}); others get their op.
template <class T>
std::string to_dot(const Var<T>& output,
                   const std::unordered_map<const Node<T>*, std::string>& names = {}) {
    std::vector<Node<T>*> order = topological_order(&output.node());
    std::unordered_map<const Node<T>*, size_t> id;
    for (size_t i = 0; i < order.size(); ++i) id[order[i]] = i;

    std::ostringstream dot;
    dot << "digraph elbo {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n";
    for (const Node<T>* node : order) {
        auto named = names.find(node);
        const std::string label = named != names.end() ? named->second : std::string(node->op);
        const bool leaf = !node->backward;
        dot << "  n" << id[node] << " [label=\"" << label << "\\n" << node->value.shape() << "\"";
        if (leaf && node->requires_grad) dot << ", shape=box";
        else if (leaf) dot << ", shape=box, style=filled, fillcolor=lightgrey";
        else dot << ", shape=ellipse";
        dot << "];\n";
    }
    for (const Node<T>* node : order)
        for (const auto& parent : node->parents)
            dot << "  n" << id[parent.get()] << " -> n" << id[node] << ";\n";
    dot << "}\n";
    return dot.str();
}

}  // namespace elbo
