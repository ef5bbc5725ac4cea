"""Capacity planning: sampled resource history, growth projections, time to threshold, recommendations.

* :mod:`.sampler` reads every resource once a minute (beat task ``capacity_sample``) into a
  :class:`~monitoring.models.CapacitySample`; a source that fails is recorded as missing.
* :mod:`.retention` rolls samples up into hourly min/mean/max (:class:`~monitoring.models.CapacityHour`) and
  deletes what is past retention (beat task ``capacity_retention``).
* :mod:`.projection` is the arithmetic: least squares, linear or exponential, with a prediction interval.
* :mod:`.report` builds, renders and stores the report (beat task ``capacity_report``,
  ``manage.py capacity_report``, the staff page ``/monitoring/capacity/``).
* :mod:`.resources` lists the resources, their thresholds (from the SLA) and their recommendations.

See docs/capacity.md.
"""
