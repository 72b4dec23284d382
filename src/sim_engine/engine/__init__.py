"""The event engine: the clock, the one scheduler, the simulation, persistence."""
