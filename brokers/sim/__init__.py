"""The deterministic simulated broker, the product's embedded default."""
