"""The command line, ``python -m steerlib COMMAND [options]``: ``main`` runs it.

Also under ``torchrun``, for several processes.

One module a job: ``parser`` (the commands and their options; ``python -m steerlib
--help`` lists them, so no list here can go stale), ``argtypes`` (option values
checked while the line is read), ``overrides`` (``--preset`` and ``--set``),
``artifacts`` (the model, token files and ``--out``), ``token_commands`` and
``study_commands`` (the ``cmd_*`` functions), ``run`` (``main``: workers, errors and
exit codes).
"""

from steerlib.cli.run import main

__all__ = ["main"]
