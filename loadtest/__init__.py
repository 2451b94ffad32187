"""Load generation against the SketchyGAN service: Locust users, a threaded load generator, sweeps, reports."""
