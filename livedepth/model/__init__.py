"""The depth models: the registry, each model's network and transform, and their weights."""
