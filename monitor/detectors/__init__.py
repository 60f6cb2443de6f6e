"""The four detector families behind one protocol, and the registry that runs them.

Each family module (``embedding``, ``pixel``, ``confidence``, ``classes``) exports
``fit(ref, cfg, *, seed=0) -> Profile`` and ``score(profile, cur, cfg) -> DriftResult``;
:mod:`monitor.detectors.registry` maps stable kinds to them.
"""
