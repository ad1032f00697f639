"""Use cases: one class per action, talking to the world only through domain ports."""
