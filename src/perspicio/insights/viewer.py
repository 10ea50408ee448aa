"""Open a saved result in the explorer: :class:`ResultViewer`, :func:`open_result` and
``perspicio insights --result FILE``.

The page is the explorer's own, in its read-only result mode
(:mod:`perspicio.insights.results`): one card per example with its input, its attribution,
the explained target, output and base value, and the method with its arguments. The server
is the explorer's, with its session token and ``Host`` check. The web stack is imported only
when a server or a widget is started.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perspicio.insights.api import WebApp

if TYPE_CHECKING:
    from perspicio.insights.results import ResultEngine
    from perspicio.insights.server import ServerHandle
    from perspicio.result import Explanation

_OPEN: list[ResultViewer] = []  # viewers started by open_result, kept until stopped


class ResultViewer(WebApp):
    """A saved :class:`~perspicio.result.Explanation` in the explorer, as a web app or widget.

    Args:
        result: The explanation, or the path of a file written by its ``save``.

    Raises:
        ArgumentError: The path is missing or not a perspicio explanation file.

    Example:
        >>> import torch
        >>> from perspicio.result import Explanation
        >>> viewer = ResultViewer(Explanation(values=(torch.ones(3, 2),), method="Saliency"))
        >>> viewer.engine.config().result.examples
        3
    """

    def __init__(self, result: Explanation | str | Path) -> None:
        from perspicio.insights.results import ResultEngine

        self.engine: ResultEngine = ResultEngine(result)
        self._server: ServerHandle | None = None

    def stop(self) -> None:
        """Stop the web app started by :meth:`serve` (nothing happens if none runs)."""
        super().stop()
        if self in _OPEN:
            _OPEN.remove(self)

    def widget(self) -> Any:
        """The notebook widget (an anywidget), without displaying it."""
        from perspicio.insights.widget import make_widget

        return make_widget(self.engine)


def open_result(
    result: Explanation | str | Path,
    port: int | None = None,
    bind_all: bool = False,
    notebook: bool = False,
) -> Any:
    """Open a saved result in the explorer: the URL of a new server, or a notebook widget.

    Args:
        result: An :class:`~perspicio.result.Explanation` or the path of its file.
        port: The server's port (a free one when ``None``).
        bind_all: Listen on every interface instead of 127.0.0.1 only.
        notebook: Return the widget to display in a notebook cell instead of serving.

    Returns:
        The URL (``str``, carrying the session token), or the widget when ``notebook``.
        :func:`close_results` stops the servers opened this way.
    """
    viewer = ResultViewer(result)
    if notebook:
        return viewer.widget()
    url = viewer.serve(port=port, bind_all=bind_all)
    _OPEN.append(viewer)
    return url


def close_results() -> None:
    """Stop every server that :func:`open_result` started."""
    for viewer in list(_OPEN):
        viewer.stop()


def serve_result(path: str, port: int | None, bind_all: bool, debug: bool, prog: str) -> int:
    """``perspicio insights --result FILE``: serve until Ctrl-C; problems are one line."""
    from perspicio._core.validate import ArgumentError

    try:
        viewer = ResultViewer(path)
    except ArgumentError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    try:
        url = viewer.serve(port=port, bind_all=bind_all, debug=debug)
    except OSError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    print(f"perspicio insights is showing {path} at {url} (Ctrl-C to stop)", flush=True)
    try:
        while viewer.url is not None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
    return 0
