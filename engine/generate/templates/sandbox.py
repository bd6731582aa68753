"""ChatTemplate: a model's chat template, compiled and rendered so that it cannot run away.

Jinja's ImmutableSandboxedEnvironment keeps a template away from Python's internals and from
changing the conversation. This environment also bounds what a template may spend (the budget and
the size measure are in engine/generate/templates/limits.py, the checks before multiplying operations in
engine/generate/templates/checks.py):

- Nothing runs at compile time: `optimized=False` and no constant output, so `{{ 'A' * 10**9 }}`
  costs its source length to compile and is refused when it renders.
- Every loop step, call, iterator step and large value ticks the render's budget: even a loop that
  outputs nothing meets the deadline, the memory allowance and the generation's cancel flag.
- Operations that can multiply their input are checked before they run; every value an expression
  makes (literals, operators, calls, filters) is checked after, containers carrying their unfolded
  size; the output, literal text included, is counted as it is written.
- `range` is the sandbox's (at most 100,000 items), `lipsum` is capped, and `namespace()` objects
  hold no namespaces (their contents are checked as they change).

A real template renders the same text as before: the same environment options as transformers'
apply_chat_template, the same filters, only checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import cached_property, lru_cache, wraps
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2 import meta, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.ext import loopcontrols
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, generate_lorem_ipsum

from engine.errors import ChatTemplateError, InvalidRequest, ModelLoadError
from engine.generate.templates.checks import (
    bounded_filter,
    check_format,
    check_method_call,
    check_power,
    check_printf,
    check_repeat,
    tojson,
)
from engine.generate.templates.limits import (
    DEFAULT_LIMITS,
    TEMPLATE_ACTION,
    RenderBudget,
    RenderCancelled,
    RenderLimits,
    active_budget,
    admit,
    budget_for,
    unfolded_size,
)

if TYPE_CHECKING:
    from engine.generate.loop import CancelFlag

#: Real chat templates are a few KB (Nemotron's is 10 KB); compiling costs time and memory per byte.
MAX_TEMPLATE_CHARS = 256 * 1024
_LIPSUM_WORDS = 100_000




class ChatTemplate:
    """A compiled chat template. `render` raises ChatTemplateError, InvalidRequest or RenderCancelled."""

    def __init__(self, source: str) -> None:
        self.source = source
        if len(source) > MAX_TEMPLATE_CHARS:
            raise ModelLoadError(
                f"The model's chat template is {len(source):,} characters long; real ones are a few thousand.",
                "Use a model file with a standard chat template.")
        try:
            self._template = _ENVIRONMENT.from_string(source)
        except Exception as exc:  # untrusted source: a syntax error, a nesting too deep for Python, ...
            raise ModelLoadError(f"The model's chat template does not parse: {_describe(exc)}.",
                                 "Use a model file with a valid chat template.") from exc

    @cached_property
    def variables(self) -> frozenset[str]:
        """The names the template reads from its context (its syntax tree's undeclared variables),
        the environment's globals aside: the variables a caller may set."""
        found = meta.find_undeclared_variables(_ENVIRONMENT.parse(self.source))
        return frozenset(found) - frozenset(_ENVIRONMENT.globals)

    def render(self, variables: Mapping[str, Any], *, limits: RenderLimits = DEFAULT_LIMITS,
               cancel: CancelFlag | None = None) -> str:
        budget = RenderBudget(limits, cancel, unfolded_size(list(variables.values()), 1 << 62))
        with budget_for(budget):
            try:
                text = self._template.render(variables)
            except (ChatTemplateError, RenderCancelled):
                raise
            except jinja2.TemplateError as exc:  # raise_exception() and the like: the template's own refusal
                raise InvalidRequest(
                    f"The model's chat template refused this conversation: {exc}",
                    "Check the order of the messages (roles must alternate as the model expects).",
                ) from exc
            except RecursionError as exc:
                raise ChatTemplateError("The model's chat template recursed too deeply and was stopped.",
                                        TEMPLATE_ACTION) from exc
            except MemoryError as exc:
                raise ChatTemplateError("The model's chat template ran out of memory.", TEMPLATE_ACTION) from exc
            except Exception as exc:  # a bug in the template's code: say whose it is, never "internal error"
                raise ChatTemplateError(f"The model's chat template failed on this conversation: {_describe(exc)}.",
                                        TEMPLATE_ACTION) from exc
        return text


@lru_cache(maxsize=8)
def compile_template(source: str) -> ChatTemplate:
    """The compiled template for `source` (kept: a model's template is checked at load and used after)."""
    return ChatTemplate(source)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".")
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


# -- the code generator -----------------------------------------------------------------------------


class _BoundedCodeGenerator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        # Jinja allows no custom node types: each loop's iterable becomes `environment.loop_items(...)`.
        for loop in node.find_all(nodes.For):
            hook = nodes.EnvironmentAttribute("loop_items", lineno=loop.iter.lineno)
            loop.iter = nodes.Call(hook, [loop.iter], [], None, None, lineno=loop.iter.lineno)
        super().visit_Template(node, frame)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        if isinstance(node.node, nodes.EnvironmentAttribute) and node.node.name == "loop_items":
            self.write("environment.loop_items(")  # our own hook: no need to go through the sandbox's call
            self.visit(node.args[0], frame)
            self.write(")")
        else:
            super().visit_Call(node, frame, forward_caller=forward_caller)

    def _admitted(self, visit: Callable[[Any, Frame], None], node: nodes.Node, frame: Frame) -> None:
        self.write("environment.admit(")
        visit(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._admitted(super().visit_List, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._admitted(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx == "load":
            self._admitted(super().visit_Tuple, node, frame)
        else:  # an assignment target
            super().visit_Tuple(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self._admitted(super().visit_Concat, node, frame)

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        raise nodes.Impossible  # no output is computed at compile time, literal text included: it is counted


# -- the environment --------------------------------------------------------------------------------


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with budget hooks: see the module docstring."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset(["+", "-", "*", "/", "//", "%", "**"])

    def __init__(self) -> None:
        super().__init__(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols], optimized=False,
                         finalize=_count_output)
        self.filters["tojson"] = tojson
        self.filters = {name: bounded_filter(name, f) for name, f in self.filters.items()}
        self.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now, lipsum=_lipsum,
                            namespace=BoundedNamespace)

    def admit(self, value: Any) -> Any:
        return admit(value)

    def loop_items(self, iterable: Any) -> _LoopItems:
        return _LoopItems(iterable)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            check_repeat(left, right, active_budget())
        elif operator == "**":
            check_power(left, right)
        elif operator == "%" and isinstance(left, (str, bytes)):
            check_printf(left, right, active_budget())
        return admit(self.binop_table[operator](left, right))

    def call(__self, __context: Context, __obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = active_budget()
        budget.tick()
        args = check_method_call(__obj, args, kwargs, budget)
        return admit(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template: str = value.__self__

        @wraps(wrapped)
        def bounded(*args: Any, **kwargs: Any) -> str:
            check_format(template, args, kwargs, active_budget())
            return wrapped(*args, **kwargs)

        return bounded


def _count_output(value: Any) -> str:
    text = str(value)
    active_budget().count_output(len(text))
    return text


class _LoopItems:
    """What a for loop steps through: its iterable, one budget tick per item (and its length, if it has one)."""

    __slots__ = ("_iterable",)

    def __init__(self, iterable: Any) -> None:
        self._iterable = iterable

    def __iter__(self) -> Any:
        budget = active_budget()
        tick = budget.tick
        for item in self._iterable:
            tick()
            yield item

    def __len__(self) -> int:
        return len(self._iterable)


class BoundedNamespace(Namespace):
    """`namespace()`: its values are checked as they are set, and none is a namespace itself."""

    def __init__(*args: Any, **kwargs: Any) -> None:
        self = args[0]
        Namespace.__init__(*args, **kwargs)
        for value in _namespace_values(self):
            _check_stored(value)
        _check_namespace_size(self)

    def __setitem__(self, name: str, value: Any) -> None:
        _check_stored(value)
        Namespace.__setitem__(self, name, value)
        if type(value) not in _SMALL:  # a flag or a counter cannot make a namespace large
            _check_namespace_size(self)


_SMALL = frozenset([int, float, bool, type(None)])


def _namespace_values(ns: Namespace) -> Iterable[Any]:
    attrs: dict[str, Any] = object.__getattribute__(ns, "_Namespace__attrs")
    return attrs.values()


def _check_stored(value: Any) -> None:
    if isinstance(value, Namespace):
        raise ChatTemplateError("The model's chat template put a namespace() inside another one.", TEMPLATE_ACTION)


def _check_namespace_size(ns: Namespace) -> None:
    budget = active_budget()
    unfolded_size(list(_namespace_values(ns)), budget.size, "a namespace")


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _strftime_now(fmt: str) -> str:
    from datetime import datetime

    return datetime.now().strftime(fmt)


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if n * max > _LIPSUM_WORDS:
        raise ChatTemplateError(f"The model's chat template asked lipsum() for over {_LIPSUM_WORDS:,} words.",
                                TEMPLATE_ACTION)
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


_ENVIRONMENT = BoundedEnvironment()
