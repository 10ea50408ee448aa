"""Plain gradient methods."""
