"""T2T interop: importing checkpoints trained by Tensor2Tensor's `next_frame_glow`."""
