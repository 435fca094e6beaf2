"""The video model: `VideoFlow` (scoring, sampling, pixels) and `build_model`."""
