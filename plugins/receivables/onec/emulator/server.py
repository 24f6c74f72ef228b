"""An HTTP server that answers like a 1C:УТ 11 standard OData publication.

Serves a :class:`Dataset` with 1C's quirks: Basic auth with a UTF-8 (Cyrillic) login;
the raw query string split on ``&`` and ``unquote``-d (a literal ``+`` gets HTTP 500
code -1, as a real УТ 11 does); ``$format=json`` or else Atom XML; ``$select``,
``$filter``, ``$orderby``, ``$top``, ``$skip``, ``$inlinecount`` (count as a string),
``/$count``, ``Set(guid'…')``; EDMX ``$metadata`` limited to what is published;
odata.error bodies with 1C's codes; POST 201 with ``Location`` and a client-supplied
``Ref_Key`` (a used one is refused), PATCH, silently dropped unknown or mistyped body
fields. Fault switches (``srv.faults`` or ``POST /_emulator/faults``) make it
misbehave on purpose; ``srv.requests`` logs every OData request.

Unfiltered paging in the natural order (``$orderby=Ref_Key``) is a list slice; filtered
or re-sorted results are cached per (filter, orderby) until the data changes, and
``eq``/``or`` chains on a field are answered from an index.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape, quoteattr

from receivables.onec.emulator.dataset import ConflictError, Dataset, EntitySet, empty_value
from receivables.onec.emulator.faults import (
    FAULT_KINDS,
    Fault,
    FaultRegistry,
    LoggedRequest,
    RequestContext,
    RequestLog,
)
from receivables.onec.emulator.filters import (
    QueryError,
    candidate_values,
    compile_filter,
    parse_orderby,
    parse_select,
    sort_rows,
)

__all__ = ["EmulatorServer", "serve", "odata_error", "LoggedRequest"]

JSON_TYPE = "application/json;charset=utf-8"
ATOM_TYPE = "application/atom+xml;type=feed;charset=utf-8"
ENTRY_TYPE = "application/atom+xml;type=entry;charset=utf-8"
XML_TYPE = "application/xml;charset=utf-8"
TEXT_TYPE = "text/plain;charset=utf-8"
CACHE_SIZE = 8
INDEX_MIN_ROWS = 1000
PUBLISH_HINT = ("Объект не опубликован в стандартном интерфейсе OData: добавьте его в «Настройка "
                "стандартного интерфейса OData»")


def odata_error(code: str, message: str) -> bytes:
    """1C's error body: {"odata.error": {"code", "message": {"lang": "ru", "value"}}}."""
    doc = {"odata.error": {"code": code, "message": {"lang": "ru", "value": message}}}
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


@dataclass
class Reply:
    """What the handler sends back."""

    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False  # close the connection abruptly instead of answering
    declared_length: int | None = None  # a Content-Length that lies (truncated bodies)


def error(status: int, code: str, message: str) -> Reply:
    return Reply(status, odata_error(code, message))


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


# -- the server -----------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: EmulatorServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError | OSError):
            return  # clients that hang up (timeouts, resets) are part of the game
        super().handle_error(request, client_address)


class EmulatorServer:
    """A 1C OData publication on loopback, served from a background thread.

    ``with EmulatorServer(ds) as srv: srv.url`` -> ``http://127.0.0.1:PORT/trade/odata/standard.odata``.
    ``published`` ({set: {fields}}) limits what exists, as an administrator's choice in
    «Настройка стандартного интерфейса OData» would; None publishes every set and field.
    """

    def __init__(self, dataset: Dataset, *, host: str = "127.0.0.1", port: int = 0,
                 base_path: str = "/trade/odata/standard.odata", user: str = "Администратор",
                 password: str = "1c-demo", published: dict[str, set[str]] | None = None,
                 verbose: bool = False):
        self.dataset = dataset
        self.host = host
        self.base_path = "/" + base_path.strip("/")
        self.user, self.password = user, password
        self.verbose = verbose
        self.faults = FaultRegistry()
        self.requests = RequestLog()
        self.publication: dict[str, dict[str, str]] = {}
        for name, ent in dataset.sets.items():
            if published is None:
                self.publication[name] = dict(ent.fields)
            elif name in published:
                self.publication[name] = {f: t for f, t in ent.fields.items() if f in published[name]}
        self._metadata: bytes | None = None
        self._filters: dict[tuple[str, str], tuple[Callable, tuple]] = {}
        self._shifts: dict[tuple, tuple[int, int]] = {}  # duplicate_rows: query -> (at skip, rows)
        self._state_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.emulator = self
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The publication root, e.g. http://127.0.0.1:PORT/trade/odata/standard.odata."""
        return f"http://{self.host}:{self.port}{self.base_path}"

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.port}/_emulator"

    def start(self) -> EmulatorServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                            name=f"1c-emulator-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open keep-alive connections."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        with self._state_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- publication ----------------------------------------------------------------

    def metadata_xml(self) -> bytes:
        """EDMX (OData v3) for the published sets and fields."""
        if self._metadata is None:
            parts = ['<?xml version="1.0" encoding="UTF-8"?>',
                     '<edmx:Edmx xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" Version="1.0">',
                     '<edmx:DataServices xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"'
                     ' m:DataServiceVersion="3.0" m:MaxDataServiceVersion="3.0">',
                     '<Schema xmlns="http://schemas.microsoft.com/ado/2009/11/edm" Namespace="StandardODATA">']
            container = []
            for name, fields in self.publication.items():
                ent = self.dataset.sets[name]
                type_name = f"{name}_RowType" if ent.kind == "rows" else name
                parts.append(f"<EntityType Name={quoteattr(type_name)}>")
                keys = [k for k in ent.key if k in fields]
                if keys:
                    parts.append("<Key>" + "".join(f"<PropertyRef Name={quoteattr(k)}/>" for k in keys) + "</Key>")
                for f, t in fields.items():
                    nullable = "false" if f in ent.key else "true"
                    parts.append(f"<Property Name={quoteattr(f)} Type={quoteattr(t)} Nullable=\"{nullable}\"/>")
                parts.append("</EntityType>")
                container.append(f"<EntitySet Name={quoteattr(name)} EntityType={quoteattr('StandardODATA.' + type_name)}/>")
            parts.append('<EntityContainer Name="EnterpriseV8" m:IsDefaultEntityContainer="true">')
            parts += container
            parts += ["</EntityContainer>", "</Schema>", "</edmx:DataServices>", "</edmx:Edmx>"]
            self._metadata = "\n".join(parts).encode("utf-8")
        return self._metadata

    def compiled_filter(self, name: str, text: str, fields: dict[str, str]) -> tuple[Callable, tuple]:
        key = (name, text)
        with self._state_lock:
            hit = self._filters.get(key)
        if hit is None:
            hit = compile_filter(text, fields, name)
            with self._state_lock:
                if len(self._filters) > 256:
                    self._filters.clear()
                self._filters[key] = hit
        return hit

    def result_rows(self, ent: EntitySet, fields: dict[str, str], filter_text: str,
                    order: list[tuple[str, bool]]) -> list[dict[str, Any]]:
        """Rows matching the filter in the requested order (caller holds dataset.lock)."""
        natural = _is_natural(ent, order)
        if not filter_text and natural:
            return ent.rows
        cache_key = (filter_text, tuple(order))
        hit = ent.cache.get(cache_key)
        if hit is not None:
            ent.cache.move_to_end(cache_key)
            return hit
        rows = ent.rows
        if filter_text:
            pred, ast = self.compiled_filter(ent.name, filter_text, fields)
            cand = candidate_values(ast, fields) if len(rows) >= INDEX_MIN_ROWS else None
            if cand is not None:
                idx = ent.index(cand[0])
                positions: set[int] = set()
                for value in cand[1]:
                    positions.update(idx.get(value, ()))
                rows = [rows[i] for i in sorted(positions)]
            rows = [r for r in rows if pred(r)]
        if not natural:
            rows = sort_rows(rows, order, fields)
        ent.cache[cache_key] = rows
        if len(ent.cache) > CACHE_SIZE:
            ent.cache.popitem(last=False)
        return rows


def _is_natural(ent: EntitySet, order: list[tuple[str, bool]]) -> bool:
    """Whether the stored order already satisfies $orderby (a prefix of the key, ascending)."""
    if not order:
        return True
    if any(desc for _, desc in order) or len(order) > len(ent.key):
        return False
    return [f for f, _ in order] == list(ent.key[:len(order)])


# -- request handling -----------------------------------------------------------------


def _parse_query(raw: str) -> dict[str, str]:
    """Split on '&' and unquote (not unquote_plus: '+' is not a space to 1C)."""
    params: dict[str, str] = {}
    for part in raw.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        params[unquote(key)] = unquote(value)
    return params


def _parse_resource(rest: str) -> tuple[str, str | None, bool]:
    """'Set', 'Set(guid'…')', 'Set/$count' -> (set, key text or None, count)."""
    count = False
    if rest.endswith("/$count"):
        rest, count = rest[: -len("/$count")], True
    key = None
    if rest.endswith(")") and "(" in rest:
        at = rest.index("(")
        rest, key = rest[:at], rest[at + 1:-1]
    return rest, key, count


def _parse_key(ent: EntitySet, text: str) -> tuple | None:
    """Key values from "guid'…'" or "Ref_Key=guid'…',LineNumber=1"; None if malformed."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    values: dict[str, Any] = {}
    for i, part in enumerate(parts):
        name, eq, literal = part.partition("=")
        if not eq:
            name, literal = (ent.key[i] if i < len(ent.key) else ""), part
        name = name.strip()
        literal = literal.strip()
        if literal.startswith("guid'") and literal.endswith("'"):
            val: Any = literal[5:-1].lower()
        elif literal.startswith("'") and literal.endswith("'"):
            val = literal[1:-1].replace("''", "'")
        elif literal.lstrip("-").isdigit():
            val = int(literal)
        else:
            return None
        values[name] = val
    if set(values) != set(ent.key):
        return None
    return tuple(values[k] for k in ent.key)


def _row_out(row: dict[str, Any], names: list[str], fields: dict[str, str]) -> dict[str, Any]:
    return {f: row.get(f, empty_value(fields[f])) for f in names}


def _xml_value(value: Any, edm: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def _atom_entry(root: str, name: str, row: dict[str, Any], names: list[str], fields: dict[str, str]) -> str:
    ref = row.get("Ref_Key", "")
    props = []
    for f in names:
        edm = fields[f]
        mtype = f' m:type="{edm}"' if edm != "Edm.String" else ""
        props.append(f"<d:{f}{mtype}>{_xml_value(row.get(f, empty_value(edm)), edm)}</d:{f}>")
    return (f"<entry><id>{escape(root)}/{escape(name)}(guid'{ref}')</id>"
            f'<category term="StandardODATA.{escape(name)}" '
            'scheme="http://schemas.microsoft.com/ado/2007/08/dataservices/scheme"/>'
            '<title type="text"/><updated>' + dt.datetime.now().strftime("%Y-%m-%dT%H:%M:%S") + "</updated>"
            '<author/><content type="application/xml"><m:properties>' + "".join(props)
            + "</m:properties></content></entry>")


_NS = ('xmlns="http://www.w3.org/2005/Atom" '
       'xmlns:d="http://schemas.microsoft.com/ado/2007/08/dataservices" '
       'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"')


def _atom_feed(root: str, name: str, rows: list[dict[str, Any]], names: list[str], fields: dict[str, str],
               count: int | None) -> bytes:
    head = (f'<?xml version="1.0" encoding="UTF-8"?>\n<feed {_NS} xml:base={quoteattr(root + "/")}>'
            f"<id>{escape(root)}/{escape(name)}</id><title type=\"text\">{escape(name)}</title>"
            f"<updated>{dt.datetime.now().strftime('%Y-%m-%dT%H:%M:%S')}</updated>")
    if count is not None:
        head += f"<m:count>{count}</m:count>"
    body = "".join(_atom_entry(root, name, r, names, fields) for r in rows)
    return (head + body + "</feed>").encode("utf-8")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Apache/2.4.58 (1C:Enterprise 8.3 emulator)"
    sys_version = ""
    timeout = 120
    server: _HTTPServer

    @property
    def emu(self) -> EmulatorServer:
        return self.server.emulator

    def setup(self) -> None:
        super().setup()
        with self.emu._state_lock:
            self.emu._connections.add(self.connection)

    def finish(self) -> None:
        with self.emu._state_lock:
            self.emu._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.emu.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_MERGE(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    # -- plumbing -------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: Reply) -> None:
        if reply.reset:
            self._reset()
            return
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(reply.declared_length or len(reply.body)))
            self.send_header("DataServiceVersion", "3.0")
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()
            if reply.declared_length is not None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            self.close_connection = True

    def _reset(self) -> None:
        """Close with TCP RST: the client sees 'connection reset by peer'."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _root(self) -> str:
        host = self.headers.get("Host")
        return f"http://{host}{self.emu.base_path}" if host else self.emu.url

    def _dispatch(self, method: str) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        path = unquote(raw_path)
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        if path.rstrip("/").startswith("/_emulator"):
            self._send(self._control(method, path.rstrip("/"), raw_query, body))
            return
        started = time.time()
        info: dict[str, Any] = {"entity_set": None, "fault": None}
        try:
            reply = self._odata(method, path, raw_query, body, info)
        except QueryError as exc:
            reply = error(exc.status, exc.code, exc.message)
        except Exception as exc:  # a bug in the emulator must still answer like 1C
            reply = error(500, "-1", f"Внутренняя ошибка эмулятора: {type(exc).__name__}: {exc}")
        # log before answering: a client that reads the log right after the answer sees it
        self.emu.requests.append(LoggedRequest(
            method=method, path=path, query=raw_query, status=0 if reply.reset else reply.status,
            entity_set=info["entity_set"], fault=info["fault"],
            body=body.decode("utf-8", errors="replace") if body else None,
            at=started, seconds=time.time() - started))
        self._send(reply)

    # -- authentication ---------------------------------------------------------------

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            login, _, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        return login == self.emu.user and password == self.emu.password

    @staticmethod
    def _unauthorized() -> Reply:
        reply = error(401, "-1", "Ошибка аутентификации: неправильное имя пользователя или пароль, "
                                 "либо у пользователя нет права на доступ через OData")
        reply.headers["WWW-Authenticate"] = 'Basic realm="1C:Enterprise"'
        return reply

    # -- OData ------------------------------------------------------------------------

    def _odata(self, method: str, path: str, raw_query: str, body: bytes, info: dict[str, Any]) -> Reply:
        emu = self.emu
        base = emu.base_path
        if path != base and not path.startswith(base + "/"):
            return Reply(404, b"Not Found", TEXT_TYPE)
        rest = path[len(base):].strip("/")
        if not self._authorized():
            return self._unauthorized()
        if "+" in raw_query:
            return error(500, "-1", "Ошибка разбора строки запроса: недопустимый символ '+' "
                                    "(пробелы должны передаваться как %20)")
        params = _parse_query(raw_query)
        fmt = params.get("$format", "").lower()
        want_json = fmt.startswith("json") or fmt.startswith("application/json")

        if rest in ("", "$metadata"):
            resource, name, key_text, count = ("service" if not rest else "metadata"), None, None, False
            info["entity_set"] = rest or None
        else:
            name, key_text, count = _parse_resource(rest)
            info["entity_set"] = name
            if method == "GET":
                resource = "count" if count else ("entity" if key_text is not None else "collection")
            else:
                resource = "write"
        skip = 0
        if params.get("$skip", "").isdigit():
            skip = int(params["$skip"])
        ctx = RequestContext(method=method, entity_set=info["entity_set"], resource=resource,
                             json=want_json and resource in ("collection", "entity", "write"), skip=skip)
        fired = emu.faults.take(ctx)
        if fired:
            info["fault"] = ",".join(f.kind for f in fired)
        for f in fired:
            if f.kind == "delay":
                time.sleep(float(f.params.get("seconds", 1.0)))
        for f in fired:
            early = self._terminal_fault(f, name)
            if early is not None:
                return early
        kinds = {f.kind: f for f in fired}

        if resource == "metadata":
            return Reply(200, emu.metadata_xml(), XML_TYPE)
        if resource == "service":
            return self._service(want_json)
        assert name is not None
        if name not in emu.publication or name not in emu.dataset.sets:
            return self._not_found_set(name)
        ent = emu.dataset.sets[name]
        fields = emu.publication[name]

        if method == "GET" and count:
            return self._count(ent, fields, params)
        if method == "GET" and key_text is None:
            reply = self._collection(ent, fields, params, want_json, kinds.get("duplicate_rows"))
        elif method == "GET":
            reply = self._entity(ent, fields, key_text or "", params, want_json)
        elif method == "POST" and key_text is None:
            reply = self._post(ent, fields, body, want_json, "post_500_after_create" in kinds)
        elif method == "PATCH" and key_text is not None:
            reply = self._patch(ent, fields, key_text, body, want_json)
        elif method == "DELETE" and key_text is not None:
            reply = self._delete(ent, key_text)
        else:
            return error(405, "-1", f"Метод {method} не поддерживается для этого ресурса")
        return self._modify(reply, kinds)

    def _terminal_fault(self, f: Fault, name: str | None) -> Reply | None:
        kind = f.kind
        if kind == "reset":
            return Reply(0, reset=True)
        if kind == "status":
            status = int(f.params.get("status", 500))
            if status == 502:
                return Reply(502, b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1>"
                                  b"<p>The proxy server received an invalid response from an upstream server.</p>"
                                  b"</body></html>", "text/html;charset=iso-8859-1")
            if status == 503:
                return error(503, "-1", f.params.get("message", "Сервер 1С:Предприятия перегружен: "
                                                                "превышено количество сеансов, повторите позже"))
            return error(status, "-1", f.params.get("message", "Ошибка СУБД: Microsoft SQL Server Native Client "
                                                              "11.0: Превышено время ожидания блокировки"))
        if kind == "gone":
            return self._not_found_set(name or "")
        if kind == "unauthorized":
            return self._unauthorized()
        if kind == "odata_error_200":
            return Reply(200, odata_error(str(f.params.get("code", "-1")),
                                          f.params.get("message", "Ошибка при выполнении запроса: "
                                                                  "конфликт блокировок при выполнении транзакции")))
        return None

    @staticmethod
    def _modify(reply: Reply, kinds: dict[str, Fault]) -> Reply:
        """Apply body/label faults to a successful JSON answer."""
        if reply.status >= 400 or reply.content_type != JSON_TYPE:
            return reply
        if "malformed_json" in kinds:
            body = reply.body
            at = body.find(b'":')
            reply.body = body[:at] + b'" = ' + body[at + 2:] + b",]" if at >= 0 else b"{value: [}"
        if "truncated_json" in kinds:
            full = len(reply.body)
            reply.body = reply.body[: max(1, full // 2)]
            if kinds["truncated_json"].params.get("lie_length"):
                reply.declared_length = full
        if "charset_1251" in kinds:
            reply.content_type = "application/json;charset=windows-1251"
        return reply

    def _not_found_set(self, name: str) -> Reply:
        return error(404, "9", f"Не найдена сущность «{name}». {PUBLISH_HINT}")

    def _service(self, want_json: bool) -> Reply:
        names = list(self.emu.publication)
        root = self._root()
        if want_json:
            return Reply(200, _dumps({"odata.metadata": f"{root}/$metadata",
                                      "value": [{"name": n, "url": n} for n in names]}))
        cols = "".join(f'<collection href={quoteattr(n)}><atom:title>{escape(n)}</atom:title></collection>'
                       for n in names)
        xml = ('<?xml version="1.0" encoding="UTF-8"?><service xmlns="http://www.w3.org/2007/app" '
               f'xmlns:atom="http://www.w3.org/2005/Atom" xml:base={quoteattr(root + "/")}>'
               f"<workspace><atom:title>Default</atom:title>{cols}</workspace></service>")
        return Reply(200, xml.encode("utf-8"), "application/atomsvc+xml;charset=utf-8")

    # -- reads ------------------------------------------------------------------------

    @staticmethod
    def _int_param(params: dict[str, str], name: str) -> int | None:
        raw = params.get(name)
        if raw is None or raw == "":
            return None
        if not raw.strip().isdigit():
            raise QueryError("14", f"Неправильное значение параметра {name}: '{raw}'")
        return int(raw)

    def _query(self, ent: EntitySet, fields: dict[str, str], params: dict[str, str]
               ) -> tuple[str, list[tuple[str, bool]]]:
        if "$expand" in params and params["$expand"].strip():
            nav = params["$expand"].split(",")[0].strip()
            raise QueryError("6", f"Не найдено навигационное свойство '{nav}' сущности '{ent.name}'")
        filter_text = params.get("$filter", "").strip()
        if filter_text:
            self.emu.compiled_filter(ent.name, filter_text, fields)  # validate early (400s)
        order = parse_orderby(params.get("$orderby", ""), fields, ent.name)
        return filter_text, order

    def _count(self, ent: EntitySet, fields: dict[str, str], params: dict[str, str]) -> Reply:
        filter_text, _ = self._query(ent, fields, {"$filter": params.get("$filter", "")})
        with self.emu.dataset.lock:
            ent.refresh()
            n = len(self.emu.result_rows(ent, fields, filter_text, []))
        return Reply(200, str(n).encode(), TEXT_TYPE)

    def _collection(self, ent: EntitySet, fields: dict[str, str], params: dict[str, str], want_json: bool,
                    dup: Fault | None) -> Reply:
        names = self._select(ent, fields, params)
        filter_text, order = self._query(ent, fields, params)
        top = self._int_param(params, "$top")
        skip = self._int_param(params, "$skip") or 0
        inline = params.get("$inlinecount", "none").lower()
        if inline not in ("allpages", "none"):
            raise QueryError("14", f"Неправильное значение параметра $inlinecount: '{inline}'")
        qkey = (ent.name, filter_text, tuple(order))
        with self.emu._state_lock:
            if dup is not None:
                rows_back = min(skip, int(dup.params.get("rows", 2)))
                self.emu._shifts[qkey] = (skip, rows_back)
            shift = self.emu._shifts.get(qkey)
            if skip == 0 and shift is not None:
                self.emu._shifts.pop(qkey, None)
                shift = None
        start = skip - shift[1] if shift is not None and skip >= shift[0] else skip
        with self.emu.dataset.lock:
            ent.refresh()
            rows = self.emu.result_rows(ent, fields, filter_text, order)
            total = len(rows)
            page = rows[start: start + top] if top is not None else rows[start:]
            out = [_row_out(r, names, fields) for r in page]
        if shift is not None and (top is None or len(out) < top):
            with self.emu._state_lock:
                self.emu._shifts.pop(qkey, None)  # the listing ended: the "insert" is absorbed
        root = self._root()
        if not want_json:
            return Reply(200, _atom_feed(root, ent.name, out, names, fields, total if inline == "allpages" else None),
                         ATOM_TYPE)
        doc: dict[str, Any] = {"odata.metadata": f"{root}/$metadata#{ent.name}"}
        if inline == "allpages":
            doc["odata.count"] = str(total)
        doc["value"] = out
        return Reply(200, _dumps(doc))

    @staticmethod
    def _select(ent: EntitySet, fields: dict[str, str], params: dict[str, str]) -> list[str]:
        if "$select" not in params:
            return list(fields)
        chosen = set(parse_select(params["$select"], fields, ent.name))
        return [f for f in fields if f in chosen]  # 1C answers in metadata order

    def _find(self, ent: EntitySet, key_text: str) -> dict[str, Any] | None:
        key = _parse_key(ent, key_text)
        if key is None:
            raise QueryError("14", f"Неправильный формат ключа сущности: ({key_text})")
        with self.emu.dataset.lock:
            ent.refresh()
            return ent.by_key().get(ent.make_key(key))

    def _entity_reply(self, ent: EntitySet, row: dict[str, Any], names: list[str], fields: dict[str, str],
                      want_json: bool, status: int = 200) -> Reply:
        root = self._root()
        if not want_json:
            xml = '<?xml version="1.0" encoding="UTF-8"?>\n' + _atom_entry(root, ent.name, row, names, fields)
            xml = xml.replace("<entry>", f"<entry {_NS} xml:base={quoteattr(root + '/')}>", 1)
            return Reply(status, xml.encode("utf-8"), ENTRY_TYPE)
        doc = {"odata.metadata": f"{root}/$metadata#{ent.name}/@Element"}
        doc.update(_row_out(row, names, fields))
        return Reply(status, _dumps(doc))

    def _entity(self, ent: EntitySet, fields: dict[str, str], key_text: str, params: dict[str, str],
                want_json: bool) -> Reply:
        names = self._select(ent, fields, params)
        row = self._find(ent, key_text)
        if row is None:
            return error(404, "9", f"Объект не найден: {ent.name}({key_text})")
        with self.emu.dataset.lock:
            row = dict(row)
        return self._entity_reply(ent, row, names, fields, want_json)

    # -- writes -----------------------------------------------------------------------

    @staticmethod
    def _json_body(body: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(body.decode("utf-8-sig")) if body else {}
        except (UnicodeDecodeError, ValueError) as exc:
            raise QueryError("-1", f"Ошибка разбора тела запроса JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise QueryError("-1", "Тело запроса должно быть объектом JSON")
        return doc

    def _writable(self, ent: EntitySet) -> Reply | None:
        if not ent.writable:
            return error(403, "-1", f"Нарушение прав доступа! Недостаточно прав для изменения «{ent.name}»")
        return None

    def _post(self, ent: EntitySet, fields: dict[str, str], body: bytes, want_json: bool, fail_after: bool) -> Reply:
        denied = self._writable(ent)
        if denied:
            return denied
        doc = {k: v for k, v in self._json_body(body).items() if k in fields}
        try:
            row = self.emu.dataset.create(ent.name, doc)
        except ConflictError as exc:
            return error(500, "-1", f"Ошибка при записи объекта «{ent.name}»: объект с ключом "
                                    f"{exc} уже существует (нарушение уникальности индекса)")
        if fail_after:
            return error(500, "-1", "Ошибка при выполнении операции над данными: соединение с сервером "
                                    "1С:Предприятия разорвано")
        reply = self._entity_reply(ent, dict(row), list(fields), fields, want_json, status=201)
        location = f"{self._root()}/{ent.name}(guid'{row['Ref_Key']}')"
        reply.headers["Location"] = quote(location, safe=":/()'=,$?&")
        return reply

    def _patch(self, ent: EntitySet, fields: dict[str, str], key_text: str, body: bytes, want_json: bool) -> Reply:
        denied = self._writable(ent)
        if denied:
            return denied
        key = _parse_key(ent, key_text)
        if key is None:
            raise QueryError("14", f"Неправильный формат ключа сущности: ({key_text})")
        doc = {k: v for k, v in self._json_body(body).items() if k in fields}
        row = self.emu.dataset.patch(ent.name, str(key[0]), doc)
        if row is None:
            return error(404, "9", f"Объект не найден: {ent.name}({key_text})")
        return self._entity_reply(ent, dict(row), list(fields), fields, want_json)

    def _delete(self, ent: EntitySet, key_text: str) -> Reply:
        denied = self._writable(ent)
        if denied:
            return denied
        row = self._find(ent, key_text)
        if row is None:
            return error(404, "9", f"Объект не найден: {ent.name}({key_text})")
        self.emu.dataset.delete_rows(ent.name, lambda r: r is row)
        return Reply(204, b"")

    # -- control API (outside the OData base, no auth, not logged) -----------------------

    def _control(self, method: str, path: str, raw_query: str, body: bytes) -> Reply:
        emu = self.emu
        try:
            doc = json.loads(body.decode("utf-8")) if body else {}
        except (UnicodeDecodeError, ValueError):
            return Reply(400, _dumps({"error": "body is not JSON"}))
        if path == "/_emulator/health" and method == "GET":
            return Reply(200, _dumps({"ok": True, "url": emu.url,
                                      "sets": {n: len(e.rows) for n, e in emu.dataset.sets.items()}}))
        if path == "/_emulator/faults":
            if method == "GET":
                return Reply(200, _dumps({"kinds": FAULT_KINDS, "faults": [f.as_dict() for f in emu.faults.list()]}))
            if method == "DELETE":
                n = len(emu.faults)
                emu.faults.clear()
                with emu._state_lock:
                    emu._shifts.clear()
                return Reply(200, _dumps({"cleared": n}))
            if method == "POST":
                if not isinstance(doc, dict) or "kind" not in doc:
                    return Reply(400, _dumps({"error": "expected {\"kind\": ..., ...}"}))
                kind = doc.pop("kind")
                opts = {k: doc.pop(k) for k in ("entity_set", "method", "times", "after") if k in doc}
                try:
                    fault = emu.faults.add(kind, **opts, **doc)
                except (TypeError, ValueError) as exc:
                    return Reply(400, _dumps({"error": str(exc)}))
                return Reply(201, _dumps(fault.as_dict()))
        if path.startswith("/_emulator/faults/") and method == "DELETE":
            ok = path.rsplit("/", 1)[1].isdigit() and emu.faults.remove(int(path.rsplit("/", 1)[1]))
            return Reply(200 if ok else 404, _dumps({"removed": bool(ok)}))
        if path == "/_emulator/requests":
            if method == "GET":
                params = _parse_query(raw_query)
                since = int(params["since"]) if params.get("since", "").isdigit() else 0
                return Reply(200, _dumps([r.as_dict() for r in emu.requests.snapshot()[since:]]))
            if method == "DELETE":
                n = len(emu.requests)
                emu.requests.clear()
                return Reply(200, _dumps({"cleared": n}))
        return Reply(404, _dumps({"error": f"no control endpoint {method} {path}"}))


# -- command line ---------------------------------------------------------------------


def serve(host: str = "127.0.0.1", port: int = 8081, scale: float = 1.0, seed: int = 1,
          end_date: dt.date = dt.date(2026, 11, 20), user: str = "Администратор", password: str = "1c-demo",
          *, base_path: str = "/trade/odata/standard.odata", verbose: bool = False) -> None:
    """Generate a company and serve it until Ctrl-C or SIGTERM (the `receivables emulator` command)."""
    import gc

    from receivables.onec.emulator.generator import generate_company

    started = time.monotonic()
    print(f"Generating the company (seed {seed}, scale {scale}, a year up to {end_date}) ...", flush=True)
    dataset = generate_company(seed=seed, scale=scale, end_date=end_date)
    gc.freeze()  # millions of long-lived rows: keep them out of every later GC pass
    n_orders = len(dataset.sets["Document_ЗаказКлиента"].rows)
    n_partners = len(dataset.sets["Catalog_Партнеры"].rows)
    print(f"Generated {n_orders:,} orders and {n_partners:,} partners in {time.monotonic() - started:.1f}s"
          .replace(",", " "), flush=True)
    srv = EmulatorServer(dataset, host=host, port=port, base_path=base_path, user=user, password=password,
                         verbose=verbose).start()
    print(f"1C OData emulator: {srv.url}", flush=True)
    print(f"  user:     {user}", flush=True)
    print(f"  password: {password}", flush=True)
    print(f"  faults:   {srv.control_url}/faults (POST/GET/DELETE), requests: {srv.control_url}/requests",
          flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    try:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    except ValueError:  # not the main thread
        pass
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
        print("The 1C emulator stopped.", flush=True)

