"""ARM-style errors: raised anywhere, turned into {"error": {"code", "message"}} by the server."""


class ArmError(Exception):
    """An ARM error answer: HTTP status, error code and message (plus optional headers)."""

    def __init__(self, status, code, message, headers=None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self):
        return {"error": {"code": self.code, "message": self.message}}


def bad_request(code, message):
    return ArmError(400, code, message)


def not_found(code, message):
    return ArmError(404, code, message)
