"""One Markdown walker for summary pages and full texts: pyromark events to handler methods.

pulldown-cmark (through pyromark) gives a flat stream of events: `{"Start": tag}`,
`{"End": tag}`, leaves such as `{"Text": "..."}`, and bare strings ("SoftBreak",
"HardBreak", "Rule"). A `Walker` subclass names its handlers after them: `start_Paragraph`,
`end_Heading`, `on_Text`, `on_SoftBreak`; each gets the event's value and its byte span.
The dispatch tables are built once per class, so a walk costs one dictionary lookup per event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

Span = Any  # {"start": int, "end": int}, byte offsets
Handler = Callable[[Any, Any, Span], None]


class Walker:
    """Dispatches a pyromark event stream to this class's start_/end_/on_ methods."""

    _starts: ClassVar[dict[str, Handler]]
    _ends: ClassVar[dict[str, Handler]]
    _leaves: ClassVar[dict[str, Handler]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        tables: dict[str, dict[str, Handler]] = {"start_": {}, "end_": {}, "on_": {}}
        for name in dir(cls):
            for prefix, table in tables.items():
                if name.startswith(prefix):
                    table[name[len(prefix) :]] = getattr(cls, name)
        cls._starts, cls._ends, cls._leaves = tables["start_"], tables["end_"], tables["on_"]

    def walk(self, events: Iterable[tuple[Any, Any]]) -> None:
        """Feed every event to its handler; events without one are skipped."""
        starts, ends, leaves = self._starts, self._ends, self._leaves
        for event, span in events:
            if type(event) is str:
                handler = leaves.get(event)
                if handler is not None:
                    handler(self, None, span)
                continue
            ((kind, value),) = event.items()
            if kind == "Start":
                handler = starts.get(value if type(value) is str else next(iter(value)))
            elif kind == "End":
                handler = ends.get(value if type(value) is str else next(iter(value)))
            else:
                handler = leaves.get(kind)
            if handler is not None:
                handler(self, value, span)
