"""The per-frame multi-scale Glow flow, as `tfp.bijectors.Bijector` pieces."""
