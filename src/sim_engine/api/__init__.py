"""API descriptions: plugin registry, OpenAPI import, binding planned actions to requests."""
