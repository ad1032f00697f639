"""The domain: entities, value objects, errors and the ports it needs. Standard library only."""
