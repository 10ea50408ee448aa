"""The explorer's entry points: :class:`Batch` and :class:`AttributionVisualizer`.

Nothing here imports the web stack; the server (FastAPI, uvicorn) and the notebook widget
(anywidget) are imported when :meth:`AttributionVisualizer.serve` or
:meth:`AttributionVisualizer.render` is first called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from perspicio.insights.features import BaseFeature

if TYPE_CHECKING:
    from perspicio.insights.engine import Engine
    from perspicio.insights.server import ServerHandle


class Batch:
    """A batch of examples for the explorer.

    Args:
        inputs: One tensor, or a tuple with one tensor per feature, batch dimension first.
        labels: The true class of each example, a 1-D tensor of the batch's length.
        additional_args: Extra forward arguments (one value or a tuple), passed after the
            inputs; tensors whose first dimension is the batch size are split per example.
    """

    def __init__(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        labels: Tensor | None,
        additional_args: Any = None,
    ) -> None:
        self.inputs = inputs
        self.labels = labels
        self.additional_args = additional_args

    def __repr__(self) -> str:
        n = len(self.inputs) if isinstance(self.inputs, tuple) else 1
        return f"Batch(inputs={n} tensor(s), labels={self.labels is not None})"


class WebApp:
    """The explorer's web app over ``self.engine``: :meth:`serve`, :meth:`stop`, :attr:`url`."""

    engine: Any
    _server: ServerHandle | None = None

    def serve(
        self,
        blocking: bool = False,
        debug: bool = False,
        port: int | None = None,
        bind_all: bool = False,
    ) -> str:
        """Start the web app and return its URL, which carries the session token.

        As in Jupyter, the server answers only requests that carry the token (the URL's
        ``?token=...``, a cookie set when that URL is opened, or an ``X-Perspicio-Token``
        header) and whose ``Host`` is this machine, so other web pages open in the same
        browser cannot use it.

        Args:
            blocking: Serve in this thread until interrupted (Ctrl-C) instead of in the
                background.
            debug: Log every request and keep tracebacks in the log.
            port: The port; a free one is chosen when ``None``.
            bind_all: Listen on every interface instead of 127.0.0.1 only (a warning is
                logged: the token is then all that protects the models).
        """
        from perspicio.insights.server import ServerHandle

        if self._server is not None and self._server.running:
            return self._server.url
        self._server = ServerHandle(self.engine, port=port, bind_all=bind_all, debug=debug)
        self._server.start()
        if blocking:
            self._server.wait()
        return self._server.url

    def stop(self) -> None:
        """Stop the web app started by :meth:`serve` (nothing happens if none runs)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str | None:
        """The URL of the running web app (with its token), or ``None``."""
        return self._server.url if self._server is not None and self._server.running else None

    @property
    def token(self) -> str | None:
        """The running web app's session token, or ``None``."""
        return self._server.token if self._server is not None and self._server.running else None


class AttributionVisualizer(WebApp):
    """An interactive explorer of a classifier's attributions: a web app or a notebook widget.

    The explorer lists examples of ``dataset`` with each model's top predictions, and shows
    how the chosen attribution method spreads each prediction over the input features. It
    filters by class and by correct/incorrect prediction, compares several models side by
    side, and re-attributes an example to any predicted class on a click.

    Args:
        models: One model or a sequence of models taking the same inputs.
        classes: Class names, indexed like the models' outputs.
        features: One :class:`~perspicio.insights.features.BaseFeature` per model input.
        dataset: An iterable of :class:`Batch`; read lazily, as far as the user browses.
        score_func: Applied to the model output to give the shown scores (for example
            ``lambda o: o.softmax(-1)``); the raw output is shown when ``None``.
        use_label_for_attr: Explain each example's true label; when ``False``, its top
            predicted class.

    Example:
        >>> import torch
        >>> from perspicio.insights import AttributionVisualizer, Batch
        >>> from perspicio.insights.features import GeneralFeature
        >>> model = torch.nn.Linear(3, 2)
        >>> data = [Batch(torch.rand(4, 3), torch.tensor([0, 1, 0, 1]))]
        >>> vis = AttributionVisualizer(model, ["no", "yes"], [GeneralFeature("x", "abc")], data)
        >>> vis.get_insights_config()["classes"]
        ['no', 'yes']
    """

    def __init__(
        self,
        models: nn.Module | Sequence[nn.Module],
        classes: Sequence[str],
        features: BaseFeature | Sequence[BaseFeature],
        dataset: Iterable[Batch],
        score_func: Callable[[Tensor], Tensor] | None = None,
        use_label_for_attr: bool = True,
    ) -> None:
        self.models = [models] if isinstance(models, nn.Module) else list(models)
        if not self.models or not all(callable(m) for m in self.models):
            raise TypeError(
                f"models must be a module or a non-empty sequence of them, got {models!r}"
            )
        self.classes = [str(c) for c in classes]
        self.features = [features] if isinstance(features, BaseFeature) else list(features)
        bad = [f for f in self.features if not isinstance(f, BaseFeature)]
        if not self.features or bad:
            raise TypeError(f"features must be BaseFeature instances, got {bad or features!r}")
        if score_func is not None and not callable(score_func):
            raise TypeError(f"score_func must be callable or None, got {score_func!r}")
        self.dataset = dataset
        self.score_func = score_func
        self.use_label_for_attr = bool(use_label_for_attr)
        self._engine: Engine | None = None
        self._server: ServerHandle | None = None

    @property
    def engine(self) -> Engine:
        """The request handlers shared by the server and the widget (built on first use)."""
        if self._engine is None:
            from perspicio.insights.engine import Engine

            self._engine = Engine(
                self.models,
                self.classes,
                self.features,
                self.dataset,
                self.score_func,
                self.use_label_for_attr,
            )
        return self._engine

    def get_insights_config(self) -> dict[str, Any]:
        """Classes, available methods and their typed arguments, selected method, models.

        ``methods`` lists the method names and ``method_arguments`` maps each name to its
        arguments (type, default, limits, choices), as in Captum's explorer.
        """
        config = self.engine.config()
        return {
            "classes": config.classes,
            "methods": [m.name for m in config.methods],
            "method_arguments": {
                m.name: {a.name: a.model_dump(exclude={"name"}) for a in m.args}
                for m in config.methods
            },
            "selected_method": config.selected_method,
            "models": config.models,
            "features": [f.model_dump() for f in config.features],
            "use_label_for_attr": config.use_label_for_attr,
        }

    def visualize(self, **request: Any) -> list[dict[str, Any]]:
        """The first examples with their predictions and attributions, as plain dicts.

        Args:
            **request: Fields of a fetch request (``method``, ``arguments``, ``classes``,
                ``instance_type``, ``start``, ``count``, ``top_k``).
        """
        from perspicio.insights.schemas import FetchRequest

        response = self.engine.fetch(FetchRequest.model_validate(request))
        return [e.model_dump() for e in response.examples]

    def widget(self) -> Any:
        """The notebook widget (an anywidget), without displaying it."""
        from perspicio.insights.widget import make_widget

        return make_widget(self.engine)

    def render(self, debug: bool = True) -> None:
        """Display the explorer in a notebook: JupyterLab, Notebook 7, VS Code, Colab.

        Args:
            debug: Log every widget request to the Python logger ``perspicio.insights``
                (at INFO level, so nothing shows unless logging is configured).
        """
        from IPython.display import display

        from perspicio.insights.widget import make_widget

        display(make_widget(self.engine, debug=debug))
