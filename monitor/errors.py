"""The one error type for problems a user can fix; the CLI prints it as one line and exits 2."""


class TrainwatchError(Exception):
    pass
