"""opmetrics: open measurement of the GB smart-metering network (DCC) for the PMR."""

__version__ = "0.1.0"
