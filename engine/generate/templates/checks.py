"""The checks that run before a template operation that can make something much larger than its input.

Most operations make at most what they were given (a slice, a filter over a list, a concatenation),
and the sandbox checks what they made afterwards (engine/generate/templates/limits.py). These cannot wait: a
repeat (`'A' * 10**9`), a power, a printf or format width, a padding method, a join with a long
separator, a replace, an indent, a filler for `batch`, a sum of lists (quadratic), a JSON indent.
Each computes what the operation would make, from the sizes of its inputs, and refuses it first.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Mapping
from functools import wraps
from types import BuiltinMethodType
from typing import Any

from jinja2.utils import _PassArg

from engine.errors import ChatTemplateError
from engine.generate.templates.limits import (
    MAX_INT_BITS,
    TEMPLATE_ACTION,
    RenderBudget,
    active_budget,
    admit,
    unfolded_size,
)

#: Work (characters copied) allowed to one operation whose cost grows with the square of its input.
QUADRATIC_WORK = 1 << 28


def check_repeat(left: Any, right: Any, budget: RenderBudget) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise ChatTemplateError("The model's chat template computed a number too large to print.", TEMPLATE_ACTION)
        return
    for seq, times in ((left, right), (right, left)):
        if isinstance(times, int) and isinstance(seq, (str, bytes)):
            budget.fits(max(times, 0) * len(seq), "a repeated string")
        elif isinstance(times, int) and isinstance(seq, (list, tuple)):
            budget.fits(max(times, 0) * unfolded_size(seq, budget.size), "a repeated list")


def check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1 \
            and base.bit_length() * exponent > MAX_INT_BITS:
        raise ChatTemplateError("The model's chat template computed a number too large to print.", TEMPLATE_ACTION)


_PRINTF_SPEC = re.compile(r"%(\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def check_printf(template: str | bytes, args: Any, budget: RenderBudget) -> None:
    """`'%10s' % x`: the widths, plus every conversion's argument (a `%(name)s` can repeat one)."""
    text = template if isinstance(template, str) else template.decode("latin-1")
    specs = list(_PRINTF_SPEC.finditer(text))
    widths = sum(int(n) for m in specs for n in m.group(2, 3) if n and n != "*")
    if any("*" in (m.group(2), m.group(3)) for m in specs):
        widths += sum(abs(a) for a in (args if isinstance(args, tuple) else (args,)) if isinstance(a, int))
    each = unfolded_size(args, budget.size, "a formatted string")
    budget.fits(len(template) + widths + len(specs) * each, "a formatted string")


def check_format(template: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: RenderBudget) -> None:
    """`'{:>10}'.format(x)`: the widths, plus every field's argument (`{0}{0}{0}` repeats one)."""
    budget.tick()
    fields = [(spec or "") for _, name, spec, _ in string.Formatter().parse(template) if name is not None]
    widths = sum(int(n) for spec in fields for n in re.findall(r"\d+", spec))
    if any("{" in spec for spec in fields):  # nested widths come from the arguments
        widths += sum(abs(a) for a in (*args, *kwargs.values()) if isinstance(a, int))
    each = unfolded_size((args, dict(kwargs)), budget.size, "a formatted string")
    budget.fits(len(template) + widths + len(fields) * each, "a formatted string")


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _counted_items(iterable: Any, separator: str | bytes, budget: RenderBudget) -> list[Any]:
    """The items of a join, collected while counting: the join is refused before it is made."""
    items: list[Any] = []
    total = 0
    for item in iterable:
        budget.tick()
        total += unfolded_size(item, budget.size) + len(separator)
        budget.fits(total, "a joined string")
        items.append(item)
    return items


def _replaced_size(text: str | bytes, old: Any, new: Any, count: Any) -> int:
    if not isinstance(old, (str, bytes)) or not isinstance(new, (str, bytes)):
        return len(text)
    found = text.count(old) if old else len(text) + 1  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def check_method_call(obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any],
                       budget: RenderBudget) -> tuple[Any, ...]:
    """Checks for the methods of strings and numbers that can make something much larger than their input."""
    if type(obj) is not BuiltinMethodType:
        return args
    owner, name = obj.__self__, obj.__name__
    if isinstance(owner, (str, bytes)):
        if name in ("center", "ljust", "rjust", "zfill"):
            budget.fits(_int(_arg(args, kwargs, 0, "width", 0)), "a padded string")
        elif name == "expandtabs":
            tab = "\t" if isinstance(owner, str) else b"\t"
            tabsize = _int(_arg(args, kwargs, 0, "tabsize", 8))
            budget.fits(len(owner) + owner.count(tab) * tabsize, "a string")  # type: ignore[arg-type]
        elif name == "replace":
            budget.fits(_replaced_size(owner, _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", ""),
                                       _arg(args, kwargs, 2, "count", -1)), "a string")
        elif name == "join" and args:
            return (_counted_items(args[0], owner, budget), *args[1:])
        elif name == "translate" and args and isinstance(owner, str):
            table = args[0]
            values = table.values() if isinstance(table, Mapping) else table if isinstance(table, (list, tuple)) else ()
            longest = max((len(v) for v in values if isinstance(v, str)), default=1)
            budget.fits(len(owner) * max(longest, 1), "a translated string")
    elif isinstance(owner, int) and name == "to_bytes":
        budget.fits(_int(_arg(args, kwargs, 0, "length", 1)), "a byte string")
    return args


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


# -- filters ------------------------------------------------------------------------------------------------

FilterCheck = Callable[[RenderBudget, Any, tuple[Any, ...], dict[str, Any]], tuple[Any, ...] | None]


def _check_center(budget: RenderBudget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    budget.fits(_int(_arg(args, kwargs, 0, "width", 80)), "a padded string")


def _check_indent(budget: RenderBudget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    width = _arg(args, kwargs, 0, "width", 4)
    step = len(width) if isinstance(width, str) else _int(width)
    text = str(value)
    budget.fits(len(text) + (text.count("\n") + 1) * step, "an indented string")


def _check_wordwrap(budget: RenderBudget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    wrap = _arg(args, kwargs, 2, "wrapstring", None)
    text = str(value)
    budget.fits(len(text) * (1 + (len(wrap) if isinstance(wrap, str) else 1)), "a wrapped string")


def _check_replace(budget: RenderBudget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    text = str(value)
    budget.fits(_replaced_size(text, _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", ""),
                               _arg(args, kwargs, 2, "count", None)), "a string")


def _check_join(budget: RenderBudget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    separator = _arg(args, kwargs, 0, "d", "")
    return (_counted_items(value, separator if isinstance(separator, str) else "", budget),)


def _check_format_filter(budget: RenderBudget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    check_printf(str(value), kwargs or args, budget)


def _check_urlize(budget: RenderBudget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    extra = sum(len(v) for v in (_arg(args, kwargs, 2, "target", None), _arg(args, kwargs, 3, "rel", None))
                if isinstance(v, str))
    text = str(value)
    budget.fits(3 * len(text) + (len(text) // 4 + 1) * (64 + extra), "a string with links")


def _check_fill(budget: RenderBudget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    count = _int(args[0] if args else kwargs.get("linecount", kwargs.get("slices", 0)))
    budget.fits(count, "a list")
    fill = _arg(args, kwargs, 1, "fill_with", None)
    if fill is not None:
        budget.fits(count * unfolded_size(fill, budget.size), "a padded list")


def _check_sum(budget: RenderBudget, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """sum() of lists copies the running total at each step: refuse what would copy too much."""
    start = _arg(args, kwargs, 1, "start", 0)
    items = _counted_items(value, "", budget)
    if isinstance(start, (list, tuple)):
        running, work = len(start), 0
        for item in items:
            running += len(item) if isinstance(item, (list, tuple, str)) else 1
            work += running
        budget.work_fits(work, QUADRATIC_WORK, f"sum() over {len(items):,} lists")
    return (items,)


_FILTER_CHECKS: dict[str, FilterCheck] = {
    "center": _check_center, "indent": _check_indent, "wordwrap": _check_wordwrap, "replace": _check_replace,
    "join": _check_join, "format": _check_format_filter, "urlize": _check_urlize, "batch": _check_fill,
    "slice": _check_fill, "sum": _check_sum,
}


def bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """The filter, with its check before (if it can multiply) and its result checked after.

    Filters and operators do not tick: they are single steps, each bounded by the size limit, and
    anything repeated is a loop step, a call or an iterator step, which do.
    """
    check = _FILTER_CHECKS.get(name)
    skip = 0 if _PassArg.from_obj(func) is None else 1  # the context or environment Jinja passes first

    @wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if check is not None and len(args) > skip:
            replaced = check(active_budget(), args[skip], args[skip + 1:], kwargs)
            if replaced is not None:  # the value, already collected (join)
                args = (*args[:skip], *replaced, *args[skip + 1:])
        return admit(func(*args, **kwargs))

    return bounded


def tojson(value: Any, ensure_ascii: bool = False, indent: int | str | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    """transformers' `tojson`. With indent or separators, each line repeats them: encode piece by piece."""
    if indent is None and separators is None:
        return json.dumps(value, ensure_ascii=ensure_ascii, sort_keys=sort_keys)
    budget = active_budget()
    encoder = json.JSONEncoder(ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    pieces: list[str] = []
    total = 0
    for piece in encoder.iterencode(value):
        budget.tick()
        total += len(piece)
        budget.fits(total, "a JSON text")
        pieces.append(piece)
    return "".join(pieces)
