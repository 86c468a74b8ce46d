# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP for the checks: the request, where an answer ends, and the verdict on it."""

import re
import urllib.parse

MAX_BODY = 65536


def http_request(check, keep=False):
    """The GET request of an HTTP(S) check, as bytes: the only place a request is built.

    `keep`: ask for a kept connection (no `Connection: close`); the Host header is the
    check's server_name (https only) or the URL's host[:port].
    """
    parts = urllib.parse.urlsplit(check['url'])
    path = (parts.path or '/') + ('?' + parts.query if parts.query else '')
    return ('GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: anycast-healthcheck\r\n%s\r\n'
            % (path, check.get('server_name', parts.netloc), '' if keep else 'Connection: close\r\n')).encode('ascii')


def needs_body(check):
    """True when the verdict reads the body (body_match or body_regex), not just the status line."""
    return 'body_match' in check or 'body_regex' in check


def http_verdict(check, data):
    """Judge an HTTP response; return the detail of a pass, raise ValueError for a failure."""
    head, _sep, body = data.partition(b'\r\n\r\n')
    fields = head.split(b'\r\n', 1)[0].split()
    if len(fields) < 2 or not fields[0].startswith(b'HTTP/') or not fields[1].isdigit():
        raise ValueError('not an HTTP response')
    status = int(fields[1])
    if status not in check['expect_status']:
        raise ValueError('status %d, expected %s' % (status, check['expect_status']))
    if needs_body(check):
        text = body.decode('utf-8', 'replace')
        if 'body_match' in check and check['body_match'] not in text:
            raise ValueError('body does not contain %r' % check['body_match'])
        if 'body_regex' in check and not re.search(check['body_regex'], text):
            raise ValueError('body does not match %r' % check['body_regex'])
    return 'status %d' % status


def _dechunk(body):
    """(decoded body, bytes after it) of a complete chunked body, None while incomplete."""
    out, pos = b'', 0
    while True:
        eol = body.find(b'\r\n', pos)
        if eol < 0:
            return None
        size = int(body[pos:eol].split(b';', 1)[0], 16)  # ValueError: not HTTP
        if size == 0:  # the last chunk, then optional trailers and an empty line
            end = eol + 2 if body.startswith(b'\r\n', eol + 2) else body.find(b'\r\n\r\n', eol + 2) + 2
            return (out, body[end + 2:]) if end > eol and len(body) >= end + 2 else None
        pos = eol + 2 + size + 2
        if len(body) < pos:
            return None
        out += body[eol + 2:pos - 2]


def http_answer(data, eof, need_body, keep):
    """(answer to judge, connection reusable) once `data` holds enough of the answer, else None.

    Enough is EOF or MAX_BODY bytes; the status line when neither the body nor the connection
    is wanted; otherwise the whole answer by its framing (Content-Length or chunked; an answer
    without either ends with the connection). A chunked body is returned decoded.
    """
    if eof or len(data) >= MAX_BODY:
        return data, False
    if not (need_body or keep):
        return (data, False) if b'\r\n' in data else None
    head, sep, body = data.partition(b'\r\n\r\n')
    if not sep:
        return None
    lines = head.lower().split(b'\r\n')
    fields = {name.strip(): value.strip() for name, _colon, value in (line.partition(b':') for line in lines[1:])}
    reusable = keep and lines[0].startswith(b'http/1.1 ') and b'close' not in fields.get(b'connection', b'')
    if b'chunked' in fields.get(b'transfer-encoding', b''):
        decoded = _dechunk(body)
        return None if decoded is None else (head + sep + decoded[0], reusable and not decoded[1])
    length = b'0' if lines[0].split()[1:2] in ([b'204'], [b'304']) else fields.get(b'content-length', b'')
    if not length.isdigit():
        return None if need_body else (data, False)  # unframed: only EOF ends it
    if len(body) < int(length):
        return None
    return data, reusable and len(body) == int(length)
