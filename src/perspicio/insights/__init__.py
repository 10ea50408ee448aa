"""An interactive explorer of attributions: a web app (``serve``) and a notebook widget (``render``).

The web stack (FastAPI, uvicorn) and anywidget are optional (``pip install perspicio[insights]``)
and imported only when a server or a widget is started.
"""

from __future__ import annotations

from perspicio.insights import features
from perspicio.insights.api import AttributionVisualizer, Batch

__all__ = ["AttributionVisualizer", "Batch", "features"]
