"""The command-line interface (``tflc``)."""
