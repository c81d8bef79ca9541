"""The only code that does I/O: AWS services, targets and ESPs, each behind a small interface."""
