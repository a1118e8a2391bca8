"""The one HTML builder of every page memscore writes (the run report, the task-gram page).

Text never reaches a page raw: :func:`el` escapes every child that is not already
:class:`Markup` and every attribute value (``html.escape`` with ``quote=True``, values in
double quotes), so a value read from a store, a corpus, a task file or a metadata field
shows as text, never as a tag. Only the functions here make :class:`Markup`. Images link
to plain file names that the caller generated (:func:`img` refuses anything else).

The one script of a page is :data:`TABLE_SCRIPT`, a constant of this module that sorts and
filters tables (``class="sortable"``, a ``<input class="filter">`` before the table): it
reads no data but the page's own cells, and :func:`write_page` pins it with a
Content-Security-Policy hash, so a script that got into a page anyway would not run.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import os
import re
from collections.abc import Iterable
from typing import Any

from ._io import atomic_write

__all__ = ["TABLE_SCRIPT", "Markup", "el", "fmt", "img", "text", "write_page"]

#: Element names the builder makes: no script, no link (the style sheet, the script and the
#: head's meta are the page's own constants, written by :func:`write_page`).
_TAGS = frozenset("div h1 h2 h3 head img input p pre span table tbody td th thead title tr".split())
_VOID = frozenset({"img", "input"})

#: Sorting (click a column's header; numbers by their ``data-v``) and filtering (the
#: ``input.filter`` just before a table hides rows without the typed text) of every
#: ``table.sortable``. A constant: no value of any page is ever part of it.
TABLE_SCRIPT = """document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  function key(cell) {
    var v = cell.getAttribute("data-v");
    if (v !== null && v !== "") { var f = parseFloat(v); if (!isNaN(f)) { return f; } }
    return cell.textContent.trim().toLowerCase();
  }
  function cmp(a, b) {
    var na = typeof a === "number", nb = typeof b === "number";
    if (na && nb) { return a - b; }
    if (na !== nb) { return na ? -1 : 1; }
    return a < b ? -1 : (a > b ? 1 : 0);
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var head = table.tHead, body = table.tBodies[0];
    if (!head || !body) { return; }
    var ths = Array.prototype.slice.call(head.rows[0].cells);
    ths.forEach(function (th, k) {
      th.setAttribute("title", "sort");
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        ths.forEach(function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r, s) {
          var c = cmp(key(r.cells[k]), key(s.cells[k]));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
    var box = table.previousElementSibling;
    if (box && box.classList.contains("filter")) {
      box.addEventListener("input", function () {
        var q = box.value.trim().toLowerCase();
        Array.prototype.forEach.call(body.rows, function (r) {
          r.hidden = q !== "" && r.textContent.toLowerCase().indexOf(q) < 0;
        });
      });
    }
  });
});
"""

#: The page's policy: no script but :data:`TABLE_SCRIPT` (by its hash), images only from
#: the page's own folder, no plugin, no form target, no base URL.
_CSP = (
    "default-src 'none'; img-src 'self' file:; style-src 'unsafe-inline'; "
    "script-src 'sha256-{}'; base-uri 'none'; form-action 'none'"
).format(base64.b64encode(hashlib.sha256(TABLE_SCRIPT.encode("utf-8")).digest()).decode("ascii"))
_ATTR = re.compile(r"[a-z][a-z-]*")
#: A generated image file name: one path component, no quotes or markup.
IMAGE_NAME = re.compile(r"[A-Za-z0-9_.+-]+\.(png|svg|jpg)")


class Markup(str):
    """A fragment of HTML made by this module (safe to insert as is)."""

    __slots__ = ()


def text(value: Any) -> Markup:
    """``value`` as HTML text: escaped (quotes included) unless it is already :class:`Markup`."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def fmt(value: Any, places: int = 4) -> Markup:
    """A table cell's text: floats to ``places`` places, NaN, inf and None as a dash, any
    other value escaped."""
    if value is None:
        return Markup("–")
    if isinstance(value, float):
        return Markup(f"{value:.{places}f}" if math.isfinite(value) else "–")
    return text(value)


def el(tag: str, *children: Any, **attrs: Any) -> Markup:
    """``<tag attr="...">children</tag>``; every child and attribute value is escaped
    unless it is :class:`Markup` (attribute values always are). ``class_`` gives ``class``.

    Raises
    ------
    ValueError
        ``tag`` or an attribute name is not one the builder makes.
    """
    if tag not in _TAGS:
        raise ValueError(f"tag: expected one of {sorted(_TAGS)}, got {tag!r}")
    parts = []
    for k, v in attrs.items():
        name = k.rstrip("_").replace("_", "-")
        if not _ATTR.fullmatch(name) or name.startswith("on"):
            raise ValueError(f"attribute: expected a plain name (no on* handler), got {k!r}")
        parts.append(f' {name}="{html.escape(str(v), quote=True)}"')
    head = f"<{tag}{''.join(parts)}>"
    if tag in _VOID:
        return Markup(head)
    return Markup(head + "".join(text(c) for c in children) + f"</{tag}>")


def img(name: str, alt: str, **attrs: Any) -> Markup:
    """An image linked by a file name in the page's folder (``attrs`` as in :func:`el`).

    Raises
    ------
    ValueError
        ``name`` is not a plain generated file name (``[A-Za-z0-9_.+-]+`` and an image
        suffix): a path, a URL or anything with quotes or markup.
    """
    if not isinstance(name, str) or not IMAGE_NAME.fullmatch(name) or name.startswith("."):
        raise ValueError(f"img: expected a plain image file name in the page's folder, got {name!r}")
    return el("img", src=name, alt=alt, **attrs)


def write_page(path: str | os.PathLike[str], title: str, body: Iterable[Any], css: str = "") -> None:
    """Write a whole page atomically: ``title`` and ``body`` (fragments from :func:`el`,
    or text, which is escaped) inside the shared head and ``css`` stylesheet (a constant of
    the package, never data), with :data:`TABLE_SCRIPT` and the policy that allows only it."""
    head = el(
        "head",
        Markup("<meta charset='utf-8'>"),
        Markup(f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'),
        el("title", title),
        Markup(f"<style>{css}</style>"),
        Markup(f"<script>{TABLE_SCRIPT}</script>"),
    )
    page = "<!doctype html>\n<html>" + head + "<body>\n" + "\n".join(text(b) for b in body) + "\n</body></html>\n"
    data = page.encode("utf-8")
    atomic_write(path, lambda f: f.write(data))
