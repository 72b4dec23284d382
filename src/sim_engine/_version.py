"""sim-engine's version, in a leaf module any layer may import.

``sim_engine.__version__`` is the public name; modules below the top of the
package read it from here, because importing the ``sim_engine`` package itself
pulls in every layer (``runs`` included).
"""

__version__ = "0.1.0"
