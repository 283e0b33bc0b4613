"""Draw the DAG of a model from its Pixyz distributions.

The structure is read from the distributions themselves (each atomic factor's ``var`` and
``cond_var``), never declared a second time: generative edges are solid, inference edges
dashed (the convention of VAE papers), observed variables shaded, latent variables white.
:func:`graphical_model_edges` returns the data behind the drawing so it can be tested without
pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import networkx as nx
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.mathtext import MathTextParser
from matplotlib.patches import Circle, FancyArrowPatch
from pixyz.distributions.distributions import Distribution
from pixyz.utils import convert_latex_name

from pixyz_zoo.distributions.text import joint_text

__all__ = ["draw_graphical_model", "graphical_model_edges"]

_DX = 2.2  # horizontal distance between nodes of one layer
_DY = 1.6  # vertical distance between layers
_RADIUS = 0.36  # node radius (data units; one unit is about one inch)
_PARAM_OFFSET = 0.9  # distance from a node to the dot of the parameters generating it


def _as_list(inference: Any) -> list[Any]:
    if inference is None:
        return []
    if isinstance(inference, (list, tuple)):
        return list(inference)
    return [inference]


def _of_model(generative: Any, inference: Any, observed: Sequence[str] | None) -> tuple[Any, Any, Any]:
    """A zoo model given in place of its generative distribution: ``(model.generative,
    model.inference, list(model.modalities))``, each unless given; Pixyz distributions as they are."""
    if isinstance(generative, Distribution) or not all(
        hasattr(generative, name) for name in ("generative", "inference", "modalities")
    ):
        return generative, inference, observed
    model = generative
    return (
        model.generative,
        model.inference if inference is None else inference,
        list(model.modalities) if observed is None else observed,
    )


def _factors(distribution: Any, role: str) -> list[Any]:
    """Atomic factors of a Pixyz distribution, roots first."""
    graph = getattr(distribution, "graph", None)
    if graph is None or not hasattr(graph, "factors"):
        raise TypeError(
            f"the {role} model must be a Pixyz distribution (e.g. p_x_given_z * prior), got "
            f"{type(distribution).__name__}"
        )
    return list(graph.factors(sorted=True))


def _has_learnable_parameters(factor: Any) -> bool:
    return any(parameter.requires_grad for parameter in factor.dist.parameters())


def _edges_of(factors: Iterable[Any]) -> list[tuple[str, str]]:
    edges: list[tuple[str, str]] = []
    for factor in factors:
        for child in factor.var:
            for parent in factor.cond_var:
                if (parent, child) not in edges:
                    edges.append((parent, child))
    return edges


def _math(name: str) -> str:
    return f"${convert_latex_name(name)}$"


def _mathtext_or_plain(text: str) -> str:
    """``$text$`` when matplotlib's mathtext parses it, else the plain text."""
    candidate = f"${text}$"
    try:
        MathTextParser("path").parse(candidate)
    except (ValueError, RuntimeError):
        return text
    return candidate


def _layers(
    order: list[str],
    generative_edges: list[tuple[str, str]],
    inference_edges: list[tuple[str, str]],
    observed: set[str],
) -> dict[str, int]:
    """Longest-path layering of the generative DAG; observed sinks go to the bottom layer."""
    dag = nx.DiGraph()
    dag.add_nodes_from(order)
    dag.add_edges_from(generative_edges)
    generative_nodes = {node for edge in generative_edges for node in edge}
    layer: dict[str, int] = {}
    for node in nx.topological_sort(dag):
        parents = list(dag.predecessors(node))
        layer[node] = 1 + max(layer[p] for p in parents) if parents else 0
    # Variables only the inference model mentions: just below their inference parents.
    inference_dag = nx.DiGraph(inference_edges)
    if nx.is_directed_acyclic_graph(inference_dag):
        for node in nx.topological_sort(inference_dag):
            if node in generative_nodes or node not in layer:
                continue
            parents = [p for p in inference_dag.predecessors(node) if p in layer]
            if parents:
                layer[node] = 1 + max(layer[p] for p in parents)
    bottom = max(layer.values(), default=0)
    for node in order:
        if node in observed and dag.in_degree(node) > 0 and dag.out_degree(node) == 0:
            layer[node] = bottom
    return layer


def _positions(
    order: list[str],
    layer: dict[str, int],
    generative_edges: list[tuple[str, str]],
    inference_edges: list[tuple[str, str]],
) -> dict[str, tuple[float, float]]:
    """Top-to-bottom layout: each layer ordered by the mean position of its parents."""
    index = {node: i for i, node in enumerate(order)}
    position: dict[str, tuple[float, float]] = {}
    for depth in sorted(set(layer.values())):
        members = [node for node in order if layer[node] == depth]

        def key(node: str, members: list[str] = members) -> tuple[int, float, int]:
            parents = [p for p, c in generative_edges if c == node and p in position]
            parents = parents or [p for p, c in inference_edges if c == node and p in position]
            if not parents:
                return (1, float(index[node]), index[node])
            mean = sum(position[p][0] for p in parents) / len(parents)
            return (0, mean, index[node])

        members.sort(key=key)
        for i, node in enumerate(members):
            position[node] = ((i - (len(members) - 1) / 2) * _DX, -depth * _DY)
    return position


def graphical_model_edges(
    generative: Any,
    inference: Any = None,
    observed: Sequence[str] | None = None,
    show_parameters: bool = False,
) -> dict[str, Any]:
    """The structure behind :func:`draw_graphical_model`.

    Returns a dict with
    ``"generative"`` and ``"inference"``: ``[(parent, child), ...]`` from each factor's
    ``cond_var`` to its ``var``;
    ``"observed"``: observed variable names (see :func:`draw_graphical_model`);
    ``"nodes"``: ``{name: {"label", "observed", "layer", "position"}}`` (layer 0 at the top,
    ``position`` the drawn (x, y));
    ``"parameters"``: one entry per factor with learnable parameters,
    ``{"symbol", "kind", "distribution", "children", "position"}``;
    ``"edges"``: every edge as drawn, ``{"parent", "child", "kind", "rad"}`` (``rad``: the bend of
    matplotlib's ``arc3`` curve, chosen so that the edge passes no other node, nor a parameter's dot
    when ``show_parameters``);
    ``"captions"``: the factorisations, generative first.

    ``generative`` may be a zoo model itself: its generative and inference models are drawn, its
    modalities observed.
    """
    generative, inference, observed = _of_model(generative, inference, observed)
    inference_list = _as_list(inference)
    generative_factors = _factors(generative, "generative")
    inference_factors = [(dist, factor) for dist in inference_list for factor in _factors(dist, "inference")]

    order: list[str] = []  # as the printed factorisation names them (siblings drawn left to right so)
    for factor in reversed(generative_factors):
        for name in [*factor.cond_var, *factor.var]:
            if name not in order:
                order.append(name)
    for _, factor in inference_factors:
        for name in [*factor.cond_var, *factor.var]:
            if name not in order:
                order.append(name)

    generative_edges = _edges_of(generative_factors)
    inference_edges = _edges_of(factor for _, factor in inference_factors)

    generated = {name for factor in generative_factors for name in factor.var}
    inputs = {name for factor in generative_factors for name in factor.cond_var} - generated
    if observed is not None:
        unknown = [name for name in observed if name not in order]
        if unknown:
            raise ValueError(
                f"observed variable(s) {unknown} are not in the model; its variables are {order}"
            )
        observed_set = set(observed)
    elif inference_factors:
        latent = {name for _, factor in inference_factors for name in factor.var}
        conditioned = {name for _, factor in inference_factors for name in factor.cond_var}
        observed_set = (conditioned | inputs) - latent
    else:
        parents = {name for factor in generative_factors for name in factor.cond_var}
        observed_set = (generated - parents) | inputs
    observed_list = [name for name in order if name in observed_set]

    layer = _layers(order, generative_edges, inference_edges, observed_set)
    position = _positions(order, layer, generative_edges, inference_edges)
    nodes = {
        name: {
            "label": _math(name),
            "observed": name in observed_set,
            "layer": layer[name],
            "position": position[name],
        }
        for name in order
    }

    parameters: list[dict[str, Any]] = []
    for kind, symbol, side, factors in (
        ("generative", r"\theta", -1.0, generative_factors),
        ("inference", r"\phi", 1.0, [factor for _, factor in inference_factors]),
    ):
        learnable = [factor for factor in factors if _has_learnable_parameters(factor)]
        for factor in learnable:
            children = list(factor.var)
            if len(learnable) > 1:
                subscript = ",".join(convert_latex_name(name) for name in children)
                text = f"${symbol}_{{{subscript}}}$"
            else:
                text = f"${symbol}$"
            x, y = position[children[0]]
            parameters.append(
                {
                    "symbol": text,
                    "kind": kind,
                    "distribution": factor.prob_text,
                    "children": children,
                    "position": (x + side * _PARAM_OFFSET, y),
                }
            )

    captions = [joint_text(generative)]
    captions += [dist.prob_joint_factorized_and_text for dist in inference_list]
    return {
        "generative": generative_edges,
        "inference": inference_edges,
        "edges": _drawn_edges(
            generative_edges,
            inference_edges,
            position,
            [parameter["position"] for parameter in parameters] if show_parameters else [],
        ),
        "nodes": nodes,
        "observed": observed_list,
        "parameters": parameters,
        "captions": captions,
    }


def _point_segment_distance(
    point: tuple[float, float], start: tuple[float, float], end: tuple[float, float]
) -> float:
    (px, py), (ax, ay), (bx, by) = point, start, end
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / length2))
    return ((px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2) ** 0.5


def _bend(
    start: tuple[float, float], end: tuple[float, float], centre: tuple[float, float], rad: float
) -> float:
    """Signed arc3 radius whose bulge points away from ``centre`` (a node or the drawing)."""
    (ax, ay), (bx, by) = start, end
    mid = ((ax + bx) / 2, (ay + by) / 2)
    offset = (by - ay, -(bx - ax))  # arc3 puts its control point at mid + rad * offset
    away = (mid[0] - centre[0], mid[1] - centre[1])
    dot = offset[0] * away[0] + offset[1] * away[1]
    if abs(dot) < 1e-9:
        dot = offset[0] if abs(offset[0]) > 1e-9 else offset[1]  # tie: bulge right, then up
    return rad if dot > 0 else -rad


def _arc_points(
    start: tuple[float, float], end: tuple[float, float], rad: float, samples: int = 24
) -> list[tuple[float, float]]:
    """Points along matplotlib's ``arc3,rad=rad`` curve from ``start`` to ``end`` (a quadratic Bezier
    whose control point is the chord's midpoint moved by ``rad`` times the chord turned clockwise)."""
    (ax, ay), (bx, by) = start, end
    cx, cy = (ax + bx) / 2 + rad * (by - ay), (ay + by) / 2 - rad * (bx - ax)
    points = []
    for i in range(1, samples):
        t = i / samples
        u = 1 - t
        points.append((u * u * ax + 2 * u * t * cx + t * t * bx, u * u * ay + 2 * u * t * cy + t * t * by))
    return points


def _clearance(
    start: tuple[float, float],
    end: tuple[float, float],
    rad: float,
    obstacles: list[tuple[float, float, float]],
) -> float:
    """How much room the ``arc3`` curve leaves the nearest of ``obstacles`` ``(x, y, room it needs)``:
    its distance to the obstacle less that room (negative: it passes through)."""
    points = _arc_points(start, end, rad)
    return min(
        (((px - ox) ** 2 + (py - oy) ** 2) ** 0.5 - room for px, py in points for ox, oy, room in obstacles),
        default=float("inf"),
    )


def _clear_bend(
    start: tuple[float, float],
    end: tuple[float, float],
    centre: tuple[float, float],
    obstacles: list[tuple[float, float, float]],
    rad: float = 0.3,
) -> float:
    """The arc3 radius of an edge that passes clear of ``obstacles`` (the other nodes, the parameters'
    dots when drawn): bulging away from ``centre`` when that curve is clear, else the first clear one
    of the other side and of wider and flatter bends, else the one that leaves them the most room."""
    preferred = _bend(start, end, centre, rad)
    candidates = [preferred, -preferred]
    for scale in (1.7, 0.5, 2.4):
        candidates += [preferred * scale, -preferred * scale]
    for candidate in candidates:
        if _clearance(start, end, candidate, obstacles) > 0:
            return candidate
    return max(candidates, key=lambda candidate: _clearance(start, end, candidate, obstacles))


def _drawn_edges(
    generative_edges: list[tuple[str, str]],
    inference_edges: list[tuple[str, str]],
    position: dict[str, tuple[float, float]],
    dots: list[tuple[float, float]],
) -> list[dict[str, Any]]:
    """Each edge with the bend it is drawn with: a generative edge straight unless a node is in its
    way (then bent away from that node), an inference edge bent away from the drawing's centre, or
    round the nodes in its way (:func:`_clear_bend`)."""
    xs, ys = [x for x, _ in position.values()], [y for _, y in position.values()]
    centre = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)
    edges = []
    for parent, child in generative_edges:
        start, end = position[parent], position[child]
        blockers = [
            at
            for name, at in position.items()
            if name not in (parent, child) and _point_segment_distance(at, start, end) < 1.4 * _RADIUS
        ]
        rad = _bend(start, end, blockers[0], 0.35) if blockers else 0.0
        edges.append({"parent": parent, "child": child, "kind": "generative", "rad": rad})
    # a node needs its radius and a margin; a parameter's dot its own room and its symbol's above it
    dot_room = [(x, y, 0.15) for x, y in dots] + [(x, y + 0.25, 0.15) for x, y in dots]
    for parent, child in inference_edges:
        others = [(*at, 1.5 * _RADIUS) for name, at in position.items() if name not in (parent, child)]
        rad = _clear_bend(position[parent], position[child], centre, others + dot_room)
        edges.append({"parent": parent, "child": child, "kind": "inference", "rad": rad})
    return edges


def draw_graphical_model(
    generative: Any,
    inference: Any = None,
    observed: Sequence[str] | None = None,
    show_parameters: bool = False,
    title: str | None = None,
) -> Figure:
    """Draw the DAG of a model from its Pixyz distributions and return the figure.

    Args:
        generative: the generative Pixyz distribution, typically the joint ``p(x|z)p(z)``; or a zoo
            model, whose generative and inference models are drawn with its modalities observed.
        inference: an inference distribution (``q(z|x)``) or a list of them; dashed edges.
        observed: observed variable names (shaded). Default: with an inference model, the
            variables it conditions on but does not generate; without one, the generative
            model's leaves. Inputs of the generative model (conditioned on, never generated,
            e.g. ``y`` in ``p(x|z,y)p(z)``) count as observed unless the inference model
            generates them.
        show_parameters: draw, for every factor with learnable parameters, a small filled dot
            (``theta`` generative, ``phi`` inference) with an edge into what it generates.
            Fixed priors such as N(0, I) have no dot.
        title: figure title.
    """
    structure = graphical_model_edges(generative, inference, observed, show_parameters)
    nodes = structure["nodes"]
    xs = [node["position"][0] for node in nodes.values()]
    ys = [node["position"][1] for node in nodes.values()]
    margin_x = _PARAM_OFFSET + 0.6 if show_parameters else _RADIUS + 0.4
    xlim = (min(xs) - margin_x, max(xs) + margin_x)
    ylim = (min(ys) - _RADIUS - 0.35, max(ys) + _RADIUS + 0.35)

    # an edge that goes round the other nodes may leave the nodes' box: the drawing takes it in
    curves = [
        point
        for edge in structure["edges"]
        for point in _arc_points(
            nodes[edge["parent"]]["position"], nodes[edge["child"]]["position"], edge["rad"]
        )
    ]
    xlim = (min([xlim[0], *(x - 0.15 for x, _ in curves)]), max([xlim[1], *(x + 0.15 for x, _ in curves)]))
    ylim = (min([ylim[0], *(y - 0.15 for _, y in curves)]), max([ylim[1], *(y + 0.15 for _, y in curves)]))

    captions = [_mathtext_or_plain(text) for text in structure["captions"]]
    width = max(xlim[1] - xlim[0], 2.5) + 1.6  # + legend
    height = (ylim[1] - ylim[0]) + 0.35 * len(captions) + (0.5 if title else 0.0) + 0.3
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_axis_off()

    circles: dict[str, Circle] = {}
    for name, node in nodes.items():
        circle = Circle(
            node["position"],
            _RADIUS,
            facecolor="0.78" if node["observed"] else "white",
            edgecolor="black",
            linewidth=1.5,
            zorder=3,
        )
        ax.add_patch(circle)
        circles[name] = circle
        ax.text(*node["position"], node["label"], ha="center", va="center", fontsize=16, zorder=4)

    def arrow(start: str, end: str, rad: float, dashed: bool) -> None:
        ax.add_patch(
            FancyArrowPatch(
                nodes[start]["position"],
                nodes[end]["position"],
                patchA=circles[start],
                patchB=circles[end],
                arrowstyle="-|>",
                mutation_scale=16,
                connectionstyle=f"arc3,rad={rad}",
                linestyle=(0, (4, 3)) if dashed else "-",
                linewidth=1.4,
                color="black",
                shrinkA=1,
                shrinkB=1,
                zorder=2,
            )
        )

    for edge in structure["edges"]:
        arrow(edge["parent"], edge["child"], edge["rad"], dashed=edge["kind"] == "inference")

    if show_parameters:
        for parameter in structure["parameters"]:
            px, py = parameter["position"]
            dot = Circle((px, py), 0.06, facecolor="black", edgecolor="black", zorder=3)
            ax.add_patch(dot)
            ax.text(px, py + 0.14, parameter["symbol"], ha="center", va="bottom", fontsize=13)
            for child in parameter["children"]:
                ax.add_patch(
                    FancyArrowPatch(
                        (px, py),
                        nodes[child]["position"],
                        patchA=dot,
                        patchB=circles[child],
                        arrowstyle="-|>",
                        mutation_scale=12,
                        linestyle=(0, (4, 3)) if parameter["kind"] == "inference" else "-",
                        linewidth=1.0,
                        color="black",
                        shrinkA=0,
                        shrinkB=1,
                        zorder=2,
                    )
                )

    handles = [
        Line2D([], [], color="black", linewidth=1.4, label="generative"),
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markersize=10,
            markerfacecolor="0.78",
            markeredgecolor="black",
            label="observed",
        ),
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markersize=10,
            markerfacecolor="white",
            markeredgecolor="black",
            label="latent",
        ),
    ]
    if structure["inference"]:
        handles.insert(
            1, Line2D([], [], color="black", linewidth=1.4, linestyle=(0, (4, 3)), label="inference")
        )
    fig.legend(handles=handles, loc="outside right upper", frameon=False, fontsize="small")
    fig.supxlabel("\n".join(captions), fontsize=12)
    if title:
        fig.suptitle(title)
    return fig
