"""Captum's ``captum._utils`` path, for ported imports (see :mod:`perspicio._captum_paths`)."""
