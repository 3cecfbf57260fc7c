class Sender:
    connected: bool
    def __init__(
        self, protect: int, session: int, keepalive: object, room: int, trailer: int
    ) -> None: ...
    def connect(self, fd: int, host: str, port: int) -> bool: ...
    def disconnect(self) -> None: ...
    def protect(
        self,
        payload_type: int,
        marker: bool,
        seq: int,
        timestamp: int,
        ssrc: int,
        ext: bytes,
        payload: bytes,
        /,
    ) -> bytes | None: ...
    def send(
        self,
        payload_type: int,
        marker: bool,
        seq: int,
        timestamp: int,
        ssrc: int,
        ext: bytes,
        payload: bytes,
        /,
    ) -> bool | bytes: ...
