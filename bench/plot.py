"""Draw the in-process table of bench/RESULTS.md as an SVG bar chart, for the docs.

    python bench/plot.py bench/RESULTS.md docs/benchmark.svg

No plotting library: the chart is a few rectangles, written by hand.
"""

import re
import sys
from html import escape
from pathlib import Path

COLOURS = ["#4c78a8", "#f58518", "#54a24b", "#e45756"]


def table(markdown: str) -> tuple[list[str], list[tuple[str, list[float]]]]:
    """The routes and, per library, the µs per request of the in-process table."""
    section = markdown.split("### µs per request in process", 1)[1].split("###", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    routes = [cell.strip() for cell in rows[0].strip("|").split("|")[1:]]
    data = []
    for row in rows[1:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        values = [float(re.match(r"[\d.]+", cell).group()) for cell in cells[1:]]  # type: ignore[union-attr]
        data.append((cells[0], values))
    return routes, data


def svg(routes: list[str], data: list[tuple[str, list[float]]]) -> str:
    bar, gap, label_width, chart_width = 9, 10, 250, 520
    top = max(value for _, values in data for value in values)
    height = 40 + len(data) * (len(routes) * bar + gap) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + chart_width + 60}" '
        f'height="{height}" font-family="sans-serif" font-size="12">',
        '<text x="10" y="20" font-weight="bold">µs per request, in process '
        "(lower is better)</text>",
    ]
    y = 40
    for name, values in data:
        parts.append(
            f'<text x="{label_width - 8}" y="{y + len(routes) * bar / 2 + 4}" '
            f'text-anchor="end">{escape(name)}</text>'
        )
        for index, value in enumerate(values):
            width = value / top * chart_width
            parts.append(
                f'<rect x="{label_width}" y="{y}" width="{width:.1f}" height="{bar - 1}" '
                f'fill="{COLOURS[index % len(COLOURS)]}"><title>{escape(name)} '
                f"{escape(routes[index])}: {value:.1f} µs</title></rect>"
            )
            parts.append(
                f'<text x="{label_width + width + 4:.1f}" y="{y + bar - 1}" '
                f'font-size="9">{value:.0f}</text>'
            )
            y += bar
        y += gap
    x = label_width
    for index, route in enumerate(routes):
        parts.append(
            f'<rect x="{x}" y="{y + 10}" width="10" height="10" '
            f'fill="{COLOURS[index % len(COLOURS)]}"/>'
        )
        parts.append(f'<text x="{x + 14}" y="{y + 19}">{escape(route)}</text>')
        x += 90
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    target.write_text(svg(*table(source.read_text())))
