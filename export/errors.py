"""The export's error type: a step produced something that fails its check."""


class ExportError(RuntimeError):
    """An export step produced something that fails its check."""
