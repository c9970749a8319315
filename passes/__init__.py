"""tflc's built-in passes, one per module. Installed as ``tflc.passes``.

Each module defines one Pass subclass decorated with ``@register``; its kebab-case name is the
CLI flag (``--passes NAME``), the registry key and the name of its test file
(``tests/passes/test_<name_with_underscores>.py``).
"""
