"""The command-line interface (the only package that prints to the user or exits)."""
