"""Training: loop, losses, presets, progressive growing (v1), ADA augmentation, EMA, DDP."""
