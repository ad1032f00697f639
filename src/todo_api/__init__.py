"""todo-api: a Todo REST API with a framework-free core (domain, use_cases) and adapters around it."""
