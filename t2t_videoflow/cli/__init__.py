"""Command-line tools: each module is one `t2t-videoflow-*` command (flags in, one
library call); `tool.py` is what they share (flag checks, one-line errors)."""
