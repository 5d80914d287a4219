"""Reports: notebook templates executed with injected parameters, exported to offline HTML.

* :mod:`abkit.report.render`: ``render_report`` (execute a template on this interpreter's
  kernel, export with abkit's offline nbconvert template, audit, write);
* :mod:`abkit.report.params`: parameters injected as data (papermill-style);
* :mod:`abkit.report.adapt`: ``AnalysisResult`` -> :class:`~abkit.report.model.ReportModel`;
* :mod:`abkit.report.sections`: the executive report's sections as HTML;
* :mod:`abkit.report.format`: numbers for people; :mod:`abkit.report.plots`: figures;
* :mod:`abkit.report.analyst` and :mod:`abkit.report.planner`: deep-dive and planner helpers.
"""
