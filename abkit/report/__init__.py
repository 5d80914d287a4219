"""Reports: notebook templates executed with injected parameters, exported to offline HTML.

``render_report`` lives in :mod:`abkit.report.render`; number formatting in
:mod:`abkit.report.format`; plot helpers in :mod:`abkit.report.plots`; the executive
report's sections in :mod:`abkit.report.sections`.
"""
