"""Captum's ``captum._utils.models`` path, for ported imports (see :mod:`perspicio._captum_paths`)."""
