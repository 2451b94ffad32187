"""SketchyGAN (Chen & Hays, CVPR 2018) in PyTorch: model, data, training and evaluation."""
