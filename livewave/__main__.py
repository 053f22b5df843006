import os
import sys

from .cli import main

rc = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # A rank under torchrun whose work is done (files written, the process group torn down:
    # distributed.finish) ends here without the interpreter's shutdown: there, C++ threads of
    # torch's (gloo's) could still be running as their objects are destroyed, and the rank
    # aborted ("terminate called without an active exception", SIGABRT) one CI run in a few,
    # even after destroy_process_group.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc or 0)
sys.exit(rc)
