"""Near-real-time monitoring: rules, detection, root-cause hints, alert sinks (issue 8)."""
