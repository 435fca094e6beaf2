"""Keras 3 building blocks shared by the coupling networks and the latent prior."""
