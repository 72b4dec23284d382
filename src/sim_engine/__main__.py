"""``python -m sim_engine`` is the ``sim-engine`` command."""

from sim_engine.cli.main import main

if __name__ == "__main__":
    main()
