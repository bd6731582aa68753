"""What one chat-template render may spend, and how the size of a template's values is measured.

A model's chat template is untrusted code (it comes with the model file, or from a server). The
sandbox in engine/generate/templates/sandbox.py ticks a `RenderBudget` at every loop step, call, iterator step
and large value, and checks every value an expression makes; the budget stops the render when it
passes its deadline, when the generation is cancelled, when the process has grown by more than the
memory allowance, or when one value or the output would pass the size limit.

Sizes are "unfolded": a list counts one per element plus what its elements count, however often one
element is shared. A template can put the same list into another one twice, and that one twice
again; forty such steps make a value whose printed form is 2**40 characters long although it
holds only forty lists. Measuring the unfolded size (with a visit budget, so measuring itself stays
bounded) stops that before anything prints, compares or serializes it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jinja2.utils import Namespace

from engine.errors import ChatTemplateError

if TYPE_CHECKING:
    from engine.generate.loop import CancelFlag

#: A full check (clock, cancel flag) runs at most this often; between them a check is one clock read.
_CHECK_EVERY_S = 0.001
#: The process's memory is read this often while a template renders.
_MEMORY_EVERY_S = 0.01
#: Values at least this large tick the budget when they are made (smaller ones are too cheap to matter).
_LARGE = 1 << 16
#: Integers a template computes stay below this many bits (Python prints at most 4300 digits anyway).
MAX_INT_BITS = 1 << 16

TEMPLATE_ACTION = "The model file's chat template is broken or hostile: use a model file with a standard template."


@dataclass(frozen=True)
class RenderLimits:
    """The bounds of one render. Real templates render in milliseconds and stay far inside them."""

    seconds: float = 10.0
    #: The most characters (or elements) any one value, and the whole output, may have (never below
    #: 65,536)...
    size: int = 8 * 2**20
    #: ...raised to this many times the size of the conversation itself, for very long conversations.
    size_per_input: int = 4
    #: How much the process may grow while one template renders.
    memory_bytes: int = 2**30


DEFAULT_LIMITS = RenderLimits()


class RenderCancelled(Exception):
    """The generation was cancelled while its prompt was rendering."""


class RenderBudget:
    """The deadline, cancel flag, size limit and memory allowance of one render, and the output so far."""

    __slots__ = ("_memory_base", "_next_check", "_next_memory", "cancel", "deadline", "limits", "output", "size")

    def __init__(self, limits: RenderLimits, cancel: CancelFlag | None, input_size: int) -> None:
        self.limits = limits
        self.cancel = cancel
        # Never below _LARGE: smaller strings are admitted without a look at the limit.
        self.size = max(limits.size, limits.size_per_input * input_size, _LARGE)
        self.output = 0
        now = time.monotonic()
        self.deadline = now + limits.seconds
        self._next_check = now
        self._next_memory = now + _MEMORY_EVERY_S
        self._memory_base = _resident_bytes()

    def tick(self) -> None:
        """Called at every step of a render: cheap, and a full check every millisecond."""
        now = time.monotonic()
        if now >= self._next_check:
            self._check(now)

    def _check(self, now: float) -> None:
        self._next_check = now + _CHECK_EVERY_S
        if self.cancel is not None and self.cancel.is_set():
            raise RenderCancelled
        if now > self.deadline:
            raise ChatTemplateError(
                f"The model's chat template took too long to render (over {self.limits.seconds:g} s) and was "
                "stopped.", TEMPLATE_ACTION)
        if now >= self._next_memory:
            self._next_memory = now + _MEMORY_EVERY_S
            resident = _resident_bytes()
            if self._memory_base is not None and resident is not None \
                    and resident - self._memory_base > self.limits.memory_bytes:
                raise ChatTemplateError(
                    f"The model's chat template used more than {self.limits.memory_bytes / 2**30:g} GiB of memory "
                    "while rendering and was stopped.", TEMPLATE_ACTION)

    def fits(self, size: int, what: str) -> None:
        """Raise unless something of `size` characters or elements is within the limit."""
        if size > self.size:
            raise ChatTemplateError(
                f"The model's chat template tried to make {what} of over {self.size:,} characters or items "
                "and was stopped.", TEMPLATE_ACTION)

    def work_fits(self, work: int, limit: int, what: str) -> None:
        """Raise unless an operation whose cost grows with the square of its input stays within `limit`."""
        if work > limit:
            raise ChatTemplateError(f"The model's chat template asked for {what}: too much work to finish in time. "
                                    "It was stopped.", TEMPLATE_ACTION)

    def count_output(self, size: int) -> None:
        self.output += size
        if self.output > self.size:
            raise ChatTemplateError(
                f"The model's chat template wrote over {self.size:,} characters and was stopped.", TEMPLATE_ACTION)


# -- the budget of the render running on this thread ----------------------------------------------

class _Active(threading.local):
    budget: RenderBudget | None = None


_active = _Active()


def active_budget() -> RenderBudget:
    budget = _active.budget
    if budget is None:  # the sandbox evaluates nothing at compile time, so this is a bug of ours
        raise RuntimeError("a chat template ran outside ChatTemplate.render")
    return budget


@contextmanager
def budget_for(budget: RenderBudget) -> Iterator[RenderBudget]:
    """`with budget_for(budget):` makes `budget` the one the sandbox's hooks on this thread use."""
    previous = _active.budget
    _active.budget = budget
    try:
        yield budget
    finally:
        _active.budget = previous


# -- sizes ------------------------------------------------------------------------------------------


class SizedList(list[Any]):
    """A list a template made, carrying its unfolded size so that nesting it costs O(1) to measure."""

    __slots__ = ("_nd_size",)  # a leading underscore: the sandbox hides it from templates

    def __init__(self, items: Iterable[Any], size: int) -> None:
        super().__init__(items)
        self._nd_size = size


class SizedDict(dict[Any, Any]):
    __slots__ = ("_nd_size",)

    def __init__(self, items: Mapping[Any, Any], size: int) -> None:
        super().__init__(items)
        self._nd_size = size

    @classmethod
    def fromkeys(cls, keys: Iterable[Any], value: Any = None) -> dict[Any, Any]:  # type: ignore[override]
        return dict.fromkeys(keys, value)  # a plain dict, measured as the call's result (never a stale tag)


class SizedTuple(tuple[Any, ...]):
    _nd_size: int

    def __new__(cls, items: Iterable[Any], size: int) -> SizedTuple:
        made = super().__new__(cls, items)
        made._nd_size = size
        return made


_SIZED = (SizedList, SizedDict, SizedTuple)
_SIZED_KINDS = frozenset(_SIZED)


def unfolded_size(value: Any, limit: int, what: str = "a value") -> int:
    """The unfolded size of `value`; raises ChatTemplateError as soon as it passes `limit`.

    Every step adds at least one, so this visits at most `limit` things whatever `value` shares.
    """
    total = 0
    stack = [value]
    while stack:
        v = stack.pop()
        kind = type(v)
        if kind is str or kind is bytes:
            total += len(v) + 1
        elif kind in _SIZED_KINDS:
            total += v._nd_size
        elif kind is dict:
            total += 1
            stack.extend(v.keys())
            stack.extend(v.values())
        elif kind is list or kind is tuple:
            total += 1
            stack.extend(v)
        elif kind is int:
            total += 1 + v.bit_length() // 64
        else:
            total += _size_of_other(v, stack)
        if total > limit:
            raise ChatTemplateError(
                f"The model's chat template tried to make {what} of over {limit:,} characters or items and was "
                "stopped.", TEMPLATE_ACTION)
    return total


_SCALARS = frozenset([int, float, bool, type(None), *_SIZED])


def _size_of_other(v: Any, stack: list[Any]) -> int:
    """unfolded_size's step for the kinds it meets rarely: subclasses, sets, views, namespaces, objects."""
    if isinstance(v, (str, bytes)):
        return len(v) + 1
    if isinstance(v, Mapping):
        stack.extend(v.keys())
        stack.extend(v.values())
    elif isinstance(v, (list, tuple, set, frozenset, KeysView, ValuesView, ItemsView)):
        stack.extend(v)
    elif isinstance(v, Namespace):
        # A namespace can change after it was measured, so a container must not hold one.
        raise ChatTemplateError("The model's chat template put a namespace() inside a list or dict.", TEMPLATE_ACTION)
    elif isinstance(v, int):
        return 1 + v.bit_length() // 64
    return 1


def admit(value: Any) -> Any:
    """Check a value a template operation made, and give containers their size tag.

    Lists, tuples and dicts are copied into their sized kind (the copy costs what making them did);
    iterators are wrapped so that what they yield is counted; other values pass as they are.
    """
    kind = type(value)
    if kind is str:
        if len(value) > _LARGE:  # making it took a while: time for a check (memory, deadline)
            budget = active_budget()
            budget.fits(len(value), "a string")
            budget.tick()
        return value
    if kind in _SCALARS:
        if kind is int and value.bit_length() > MAX_INT_BITS:
            raise ChatTemplateError("The model's chat template computed a number too large to print.", TEMPLATE_ACTION)
        return value
    budget = active_budget()
    budget.tick()
    limit = budget.size
    if kind is list:
        return SizedList(value, unfolded_size(value, limit, "a list"))
    if kind is tuple:
        return SizedTuple(value, unfolded_size(value, limit, "a list"))
    if kind is dict:
        return SizedDict(value, unfolded_size(value, limit, "a dict"))
    return _admit_other(value, limit)


def _admit_other(value: Any, limit: int) -> Any:
    if isinstance(value, str):  # Markup (what |safe makes)
        active_budget().fits(len(value), "a string")
        return value
    if isinstance(value, (KeysView, ValuesView, ItemsView)):  # they print their whole dict: make a list
        items = list(value)
        return SizedList(items, unfolded_size(items, limit, "a list"))
    if isinstance(value, Iterator) and not isinstance(value, CountedIterator):
        return CountedIterator(value)
    if isinstance(value, (str, bytes, list, tuple, Mapping, set, frozenset)):
        unfolded_size(value, limit, "a value")  # a subclass (a named tuple, Markup): measure, keep it
    return value


class CountedIterator:
    """An iterator from a filter or method: each step is a budget tick, and what it yields is counted.

    Whatever collects it (a list, a join, a loop's length) then holds no more than the size limit.
    """

    __slots__ = ("_it", "_spent")

    def __init__(self, it: Iterator[Any]) -> None:
        self._it = it
        self._spent = 0

    def __iter__(self) -> CountedIterator:
        return self

    def __next__(self) -> Any:
        budget = active_budget()
        budget.tick()
        item = next(self._it)
        self._spent += unfolded_size(item, budget.size, "a sequence")
        budget.fits(self._spent, "a sequence")
        return item


def _resident_bytes() -> int | None:
    """The process's resident memory, where the system tells it cheaply (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
