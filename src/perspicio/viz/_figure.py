"""Figure plumbing shared by the image and time-series plots (matplotlib imported lazily)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure

# Backends that only write files: calling pyplot.show() on them does nothing useful.
_FILE_BACKENDS = frozenset({"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"})


def make_figure(
    plt_fig_axis: tuple[Figure, Any] | None,
    use_pyplot: bool,
    fig_size: tuple[float, float],
    **subplots_kwargs: Any,
) -> tuple[Figure, Any]:
    """Return the user's ``(figure, axes)`` or a new pair.

    A new figure comes from pyplot when `use_pyplot` is true (so that it is managed and shown
    like any pyplot figure) and is a bare `matplotlib.figure.Figure` otherwise.
    """
    if plt_fig_axis is not None:
        if not isinstance(plt_fig_axis, (tuple, list)) or len(plt_fig_axis) != 2:
            raise TypeError(
                f"plt_fig_axis must be a (Figure, Axes) pair; got {type(plt_fig_axis).__name__}"
            )
        return plt_fig_axis[0], plt_fig_axis[1]
    if use_pyplot:
        import matplotlib.pyplot as plt

        return plt.subplots(figsize=fig_size, **subplots_kwargs)
    from matplotlib.figure import Figure

    figure = Figure(figsize=fig_size)
    return figure, figure.subplots(**subplots_kwargs)


def show_if_interactive(use_pyplot: bool) -> None:
    """Call ``pyplot.show()`` when asked to and the active backend can display figures."""
    if not use_pyplot:
        return
    import matplotlib

    backend = str(matplotlib.get_backend()).lower()
    if backend in _FILE_BACKENDS:
        return
    import matplotlib.pyplot as plt

    plt.show()


def hide_ticks(ax: Axes) -> None:
    """Remove ticks, tick labels and grid lines from `ax`."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(visible=False)


def add_colorbar(
    figure: Figure,
    ax: Axes,
    mappable: ScalarMappable | None,
    alpha: float | None = None,
    pad: float = 0.1,
) -> None:
    """Put a horizontal colour bar under `ax`; an empty slot when there is no mappable.

    The empty slot keeps axes of a grid the same size whether or not they show a heat map.
    """
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    bar_ax = make_axes_locatable(ax).append_axes("bottom", size="5%", pad=pad)
    if mappable is None:
        bar_ax.axis("off")
        return
    figure.colorbar(mappable, cax=bar_ax, orientation="horizontal", alpha=alpha)


def note_in_title(ax: Axes, title: str | None, note: str | None) -> None:
    """Set the axes title, with `note` appended on its own line when given."""
    parts = [part for part in (title, note) if part]
    if parts:
        ax.set_title("\n".join(parts))
