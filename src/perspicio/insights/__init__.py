"""An interactive explorer of attributions: a web app (``serve``) and a notebook widget (``render``).

:func:`open_result` shows a saved :class:`~perspicio.result.Explanation` in the same explorer,
read-only (``perspicio insights --result FILE`` from the command line).

The web stack (FastAPI, uvicorn) and anywidget are optional (``pip install perspicio[insights]``)
and imported only when a server or a widget is started.
"""

from __future__ import annotations

from perspicio.insights import features
from perspicio.insights.api import AttributionVisualizer, Batch
from perspicio.insights.viewer import ResultViewer, close_results, open_result

__all__ = [
    "AttributionVisualizer",
    "Batch",
    "ResultViewer",
    "close_results",
    "features",
    "open_result",
]
