"""Serving: a trained model as a SavedModel with serving signatures."""
