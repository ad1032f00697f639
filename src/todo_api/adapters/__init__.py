"""Adapters: the web, the database and the crypto around the core. They never import one another."""
