"""The built-in example: a digits CNN explained by every method, written to an HTML report."""
