"""Shared machinery behind every attribution method. Nothing here is user-facing."""
