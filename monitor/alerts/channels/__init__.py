"""Alert channels, one module each, registered by type in ``monitor.alerts.channels.registry``."""
