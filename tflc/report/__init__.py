"""Rendering at the edge: text tables, Markdown/HTML reports, plots and traces, made from the
plain data objects that the analyses return (``tflc.profiler.Profile``, bench results).

Nothing below the CLI imports this package: reports are data first (``--json``), rendered here.
"""
