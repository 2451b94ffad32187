"""Start and stop a real tritonserver with safe flags; never imports torch or the training package."""
