"""Reports: notebook templates executed with injected parameters, exported to offline HTML.

* :mod:`abkit.report.render`: ``render_report`` (execute a template on this interpreter's
  kernel, export with abkit's offline nbconvert template, audit, write);
* :mod:`abkit.report.output`: checked destinations and atomic, link-proof writes;
* :mod:`abkit.report.params`: parameters injected as data (papermill-style);
* :mod:`abkit.report.adapt`: ``AnalysisResult`` -> :class:`~abkit.report.model.ReportModel`
  (the result only: no store, no metric file, no re-planning);
* :mod:`abkit.report.story`: the recommendation in plain words (and "cannot finish");
* :mod:`abkit.report.sections`: the executive report's sections, one module each, listed in
  display order (:mod:`abkit.report.blocks` holds what they share);
* :mod:`abkit.report.index`: every experiment on one offline page;
* :mod:`abkit.report.format`: numbers for people; :mod:`abkit.report.plots`: figures;
* :mod:`abkit.report.analyst` and :mod:`abkit.report.planner`: deep-dive and planner helpers.
"""
