"""The experiment lifecycle: the declared experiment spec and the controller that acts on it.

Import from the modules (this package file stays empty so the CLI can load the light ones):

* :mod:`abkit.lifecycle.spec`: :func:`load_specs`, :class:`ExperimentSpec`,
  :func:`resolve_analysis_inputs` (read by the analysis, the reports, the notebooks);
* :mod:`abkit.lifecycle.controller`: :func:`run_controller`, :func:`manual_action`,
  :func:`list_experiments` (ramp, rollback, ship, with an audit trail);
* :mod:`abkit.lifecycle.safety`: the always-valid harm rule;
* :mod:`abkit.lifecycle.simulate`: the loop's error rates by vectorised simulation.
"""
