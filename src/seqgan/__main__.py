"""`python -m seqgan` and the `seqgan` command (`run`): a Ctrl-C while torch is still being
imported ends with one line too, like one at any later point."""

import signal
import sys
import traceback


def run() -> None:
    # A KeyboardInterrupt raised inside torch's C++ initialisation aborts the process (SIGABRT, a
    # C++ "terminate called" message): during the import a Ctrl-C is only noted, then obeyed.
    noted: list[int] = []
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.SIG_IGN:  # started with Ctrl-C ignored (nohup, a background job): leave it so
        signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
    try:
        from .cli import main
    finally:
        signal.signal(signal.SIGINT, previous)
    if noted:
        print("seqgan: interrupted", file=sys.stderr)
        sys.exit(130)
    from . import dist

    try:
        code = main()
    except BaseException as e:  # an error main() does not turn into a line: its traceback, then leave
        if not dist.joined():
            raise
        if isinstance(e, SystemExit):  # as Python itself ends: None is 0, a message is printed and is 1
            if e.code is not None and not isinstance(e.code, int):
                print(e.code, file=sys.stderr)
            dist.leave(e.code if isinstance(e.code, int) else 0 if e.code is None else 1)
        traceback.print_exc()
        dist.leave(1)
    if dist.joined():  # a torchrun rank: see dist.leave
        dist.leave(code or 0)
    sys.exit(code)


if __name__ == "__main__":
    run()
