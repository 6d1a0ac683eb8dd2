"""The one error the data pipeline raises for a table it cannot use."""


class TableError(ValueError):
    """A table (or a choice about it) cannot be used.

    The message is one sentence that says what is wrong and what to do; the dashboard shows it
    to the user as it is.
    """
