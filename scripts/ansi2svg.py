#!/usr/bin/env python3
"""Render `tmux capture-pane -e -p` output (text with ANSI SGR colours) as
an SVG screenshot: one monospace cell per character, runs of equal style
grouped. Used for the README's console screenshot."""
import html
import re
import sys

CELL_W, CELL_H, FONT = 8.4, 17, 14
BASE16 = ["#1d1f21", "#cc6666", "#b5bd68", "#f0c674", "#81a2be", "#b294bb", "#8abeb7", "#c5c8c6",
          "#666666", "#d54e53", "#b9ca4a", "#e7c547", "#7aa6da", "#c397d8", "#70c0b1", "#eaeaea"]
DEFAULT_FG, DEFAULT_BG = "#c5c8c6", "#1d1f21"


def xterm256(n):
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return "#%02x%02x%02x" % (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    v = 8 + (n - 232) * 10
    return "#%02x%02x%02x" % (v, v, v)


def apply(style, params):
    codes = [int(p) if p else 0 for p in params.split(";")] if params else [0]
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            style = dict(fg=None, bg=None, bold=False, dim=False, rev=False)
        elif c == 1:
            style["bold"] = True
        elif c == 2:
            style["dim"] = True
        elif c == 22:
            style["bold"] = style["dim"] = False
        elif c == 7:
            style["rev"] = True
        elif c == 27:
            style["rev"] = False
        elif 30 <= c <= 37:
            style["fg"] = BASE16[c - 30]
        elif 90 <= c <= 97:
            style["fg"] = BASE16[c - 90 + 8]
        elif 40 <= c <= 47:
            style["bg"] = BASE16[c - 40]
        elif 100 <= c <= 107:
            style["bg"] = BASE16[c - 100 + 8]
        elif c == 39:
            style["fg"] = None
        elif c == 49:
            style["bg"] = None
        elif c in (38, 48) and i + 1 < len(codes):
            key = "fg" if c == 38 else "bg"
            if codes[i + 1] == 5 and i + 2 < len(codes):
                style[key] = xterm256(codes[i + 2])
                i += 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                style[key] = "#%02x%02x%02x" % tuple(codes[i + 2:i + 5])
                i += 4
        i += 1
    return style


def main():
    lines = sys.stdin.read().rstrip("\n").split("\n")
    style = dict(fg=None, bg=None, bold=False, dim=False, rev=False)
    rows = []
    for line in lines:
        cells = []
        for part in re.split(r"(\x1b\[[0-9;]*m)", line):
            m = re.fullmatch(r"\x1b\[([0-9;]*)m", part)
            if m:
                style = apply(dict(style), m.group(1))
                continue
            for ch in re.sub(r"\x1b\[[^a-zA-Z]*[a-zA-Z]", "", part):
                fg, bg = style["fg"] or DEFAULT_FG, style["bg"] or DEFAULT_BG
                if style["rev"]:
                    fg, bg = bg, fg
                cells.append((ch, fg, bg, style["bold"], style["dim"]))
        rows.append(cells)
    width = max((len(r) for r in rows), default=0)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="DejaVu Sans Mono, Menlo, monospace" font-size="%d">'
           % (width * CELL_W + 16, len(rows) * CELL_H + 16, FONT),
           '<rect width="100%%" height="100%%" fill="%s"/>' % DEFAULT_BG]
    for y, cells in enumerate(rows):
        x = 0
        while x < len(cells):
            ch, fg, bg, bold, dim = cells[x]
            end = x
            while end < len(cells) and cells[end][1:] == (fg, bg, bold, dim):
                end += 1
            px, py = 8 + x * CELL_W, 8 + y * CELL_H
            if bg != DEFAULT_BG:
                out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>' % (px, py, (end - x) * CELL_W, CELL_H, bg))
            text = "".join(c[0] for c in cells[x:end])
            if text.strip():
                attrs = ' font-weight="bold"' if bold else ""
                attrs += ' opacity="0.6"' if dim else ""
                out.append('<text x="%.1f" y="%d" fill="%s" textLength="%.1f" xml:space="preserve"%s>%s</text>'
                           % (px, py + CELL_H - 4, fg, (end - x) * CELL_W, attrs, html.escape(text)))
            x = end
    out.append("</svg>")
    print("\n".join(out))


if __name__ == "__main__":
    main()
