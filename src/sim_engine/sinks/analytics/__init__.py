"""Analytics sinks: a run's actions as PostHog, Segment or Mixpanel events, to batch
files for import or live through the vendors' SDKs (see ``docs/analytics.md``)."""

from sim_engine.sinks.analytics.files import FILE_FORMATS, FileWriter, file_writer, json_line
from sim_engine.sinks.analytics.sink import AnalyticsSink, AnalyticsWriter

__all__ = [
    "FILE_FORMATS",
    "AnalyticsSink",
    "AnalyticsWriter",
    "FileWriter",
    "file_writer",
    "json_line",
]
