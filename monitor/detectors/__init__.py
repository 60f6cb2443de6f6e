"""The four detector families behind one protocol, and the registry that runs them.

Each family module (``embedding``, ``pixel``, ``confidence``, ``classes``) declares its kinds
once in ``SPEC`` and exports ``fit(ref, cfg, *, seed=0) -> Profile`` and
``score(profile, cur, cfg) -> DriftResult``; :mod:`monitor.detectors.registry` reads the specs
and runs them; :func:`monitor.detect` combines their results into one verdict.
"""
