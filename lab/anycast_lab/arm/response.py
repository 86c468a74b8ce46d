"""What a handler answers: a status, an optional JSON body and headers (errors are ArmError, errors.py)."""


class Response:  # pylint: disable=too-few-public-methods
    def __init__(self, status, body=None, headers=None):
        self.status, self.body, self.headers = status, body, headers or {}
