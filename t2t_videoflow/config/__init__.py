"""Configuration: hparams values and their validation, the problem and hparams-set
registries, and user dirs (`--t2t_usr_dir`) that register more."""
