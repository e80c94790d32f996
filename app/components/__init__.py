"""Reusable pieces of the looplab app: the store connection, the filter bar, empty states."""
