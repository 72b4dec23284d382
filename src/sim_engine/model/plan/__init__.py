"""The vectorised planner: the behaviour model planned in bulk with numpy, for ``generate``.

Pure like the rest of ``model``: no I/O. :mod:`.population` plans who exists and
their lifecycle day by day; :mod:`.events` plans a chunk of users' sessions and
events; :mod:`.rand` derives every draw from the seed, the user and the day.
"""
