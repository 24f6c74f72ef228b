"""An HTTP server that answers like a 1C:УТ 11 standard OData publication.

Serves the subset of `onec.schema` over a generated company with 1C's quirks: Basic
auth with a UTF-8 login, `$format=json` or Atom, `$select/$filter/$orderby/$top/$skip/
$inlinecount`, `/$count`, `Set(guid'…')`, a '+' in the query -> 500, odata.error
bodies and codes, POST 201 with Location and client-supplied Ref_Key, PATCH. Fault
switches (``srv.faults`` or ``POST /_emulator/faults``) make it misbehave on purpose.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote
from xml.sax.saxutils import quoteattr

from receivables.onec.emulator.filters import FilterError, compile_filter
from receivables.onec.emulator.generator import KEYS, Dataset, generate_company
from receivables.onec.schema import READ_SETS, WRITE_SETS

ALL_SETS = {**READ_SETS, **WRITE_SETS}
_ENTITY = re.compile(r"^(?P<set>[^()/]+)\(guid'(?P<ref>[0-9a-fA-F-]{36})'\)$")
NUMERIC = {"Edm.Double", "Edm.Int32", "Edm.Int16"}


@dataclass
class Fault:
    kind: str
    entity_set: str | None = None
    method: str | None = "GET"
    times: int = 1
    after: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def matches(self, method: str, entity_set: str | None) -> bool:
        return ((self.entity_set is None or self.entity_set == entity_set)
                and (self.method is None or self.method == method))


PERSISTENT = {"gone", "unauthorized"}


class Faults:
    """Fault switches, consumed in order: `after` matching requests pass, then `times` fail."""

    def __init__(self) -> None:
        self._items: list[Fault] = []
        self._lock = threading.Lock()
        self.shift: dict[str, int] = {}

    def add(self, kind: str, *, entity_set: str | None = None, method: str | None = "GET", times: int = 1,
            after: int = 0, **params: Any) -> Fault:
        fault = Fault(kind, entity_set, method, times, after, params)
        with self._lock:
            self._items.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.shift.clear()

    def take(self, method: str, entity_set: str | None) -> Fault | None:
        with self._lock:
            for f in self._items:
                if not f.matches(method, entity_set):
                    continue
                if f.after > 0:
                    f.after -= 1
                    continue
                if f.kind not in PERSISTENT:
                    f.times -= 1
                    if f.times <= 0:
                        self._items.remove(f)
                return f
        return None


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: str
    status: int


def odata_error(code: str, message: str) -> bytes:
    return json.dumps({"odata.error": {"code": code, "message": {"lang": "ru", "value": message}}},
                      ensure_ascii=False).encode("utf-8")


class EmulatorServer:
    """A 1C OData publication on loopback, in a background thread."""

    def __init__(self, dataset: Dataset, *, host: str = "127.0.0.1", port: int = 0,
                 base_path: str = "/trade/odata/standard.odata", user: str = "Администратор",
                 password: str = "1c-demo", published: dict[str, set[str]] | None = None):
        self.dataset = dataset
        self.base_path = "/" + base_path.strip("/")
        self.user, self.password = user, password
        self.published = ({k: set(v) for k, v in published.items()} if published is not None
                          else {k: set(v) for k, v in ALL_SETS.items()})
        self.faults = Faults()
        self.requests: list[LoggedRequest] = []
        self._log_lock = threading.Lock()
        self._sorted: dict[tuple[str, str], tuple[int, list[dict[str, Any]]]] = {}
        self._httpd = ThreadingHTTPServer((host, port), _handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._httpd.server_address[0]}:{self.port}{self.base_path}"

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="1c-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self, entry: LoggedRequest) -> None:
        with self._log_lock:
            self.requests.append(entry)

    def sorted_rows(self, name: str, orderby: str) -> list[dict[str, Any]]:
        """Rows of a set in `$orderby` order, cached until the dataset changes."""
        key = (name, orderby)
        cached = self._sorted.get(key)
        if cached and cached[0] == self.dataset.version:
            return cached[1]
        with self.dataset.lock:
            rows = list(self.dataset.rows(name))
            version = self.dataset.version
        for part in reversed([p.strip() for p in orderby.split(",") if p.strip()]):
            bits = part.split()
            fname, desc = bits[0], len(bits) > 1 and bits[1].lower() == "desc"
            rows.sort(key=lambda r, f=fname: _sort_key(r.get(f)), reverse=desc)
        self._sorted[key] = (version, rows)
        return rows

    def metadata_xml(self) -> bytes:
        types, sets = [], []
        for name, fields in self.published.items():
            if name not in ALL_SETS:
                continue
            keys = "".join(f'<PropertyRef Name={quoteattr(k)}/>' for k in KEYS.get(name, ("Ref_Key",)))
            props = "".join(f'<Property Name={quoteattr(f)} Type={quoteattr(t)} Nullable="true"/>'
                            for f, t in ALL_SETS[name].items() if f in fields)
            types.append(f"<EntityType Name={quoteattr(name)}><Key>{keys}</Key>{props}</EntityType>")
            sets.append(f'<EntitySet Name={quoteattr(name)} EntityType={quoteattr("StandardODATA." + name)}/>')
        xml = ('<?xml version="1.0" encoding="UTF-8"?>'
               '<edmx:Edmx xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" Version="1.0">'
               '<edmx:DataServices xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"'
               ' m:DataServiceVersion="3.0"><Schema xmlns="http://schemas.microsoft.com/ado/2009/11/edm"'
               ' Namespace="StandardODATA">' + "".join(types) +
               '<EntityContainer Name="EnterpriseV8" m:IsDefaultEntityContainer="true">' + "".join(sets) +
               "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>")
        return xml.encode("utf-8")


def _sort_key(v: Any) -> tuple:
    if v is None:
        return (0, "")
    if isinstance(v, bool):
        return (1, int(v))
    if isinstance(v, int | float):
        return (1, v)
    if isinstance(v, str) and v.isdigit():
        return (1, int(v))
    return (2, str(v).lower())


class _Reply(Exception):
    def __init__(self, status: int, body: bytes, content_type: str = "application/json;charset=utf-8",
                 headers: dict[str, str] | None = None):
        self.status, self.body, self.content_type, self.headers = status, body, content_type, headers or {}


def _handler(srv: EmulatorServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "1C-Enterprise-Emulator/8.3"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def do_PATCH(self) -> None:  # noqa: N802
            self._serve("PATCH")

        def do_DELETE(self) -> None:  # noqa: N802
            self._serve("DELETE")

        # -- plumbing -------------------------------------------------------------

        def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _serve(self, method: str) -> None:
            raw_path, _, raw_query = self.path.partition("?")
            status = 500
            try:
                if raw_path.startswith("/_emulator/"):
                    status = self._control(method, raw_path)
                    return
                status = self._odata(method, raw_path, raw_query)
            except _Reply as r:
                status = r.status
                self._send(r.status, r.body, r.content_type, r.headers)
            except (ConnectionError, BrokenPipeError):
                status = 0
            finally:
                srv.log(LoggedRequest(method, unquote(raw_path), raw_query, status))

        def _control(self, method: str, path: str) -> int:
            if path == "/_emulator/faults" and method == "POST":
                spec = json.loads(self._body() or b"{}")
                kind = spec.pop("kind")
                srv.faults.add(kind, **spec)
                self._send(201, b"{}", "application/json")
                return 201
            if path == "/_emulator/faults" and method == "DELETE":
                srv.faults.clear()
                self._send(204, b"", "application/json")
                return 204
            if path == "/_emulator/requests" and method == "GET":
                body = json.dumps([r.__dict__ for r in srv.requests], ensure_ascii=False).encode()
                self._send(200, body, "application/json")
                return 200
            raise _Reply(404, b"{}")

        def _auth(self) -> None:
            header = self.headers.get("Authorization", "")
            ok = False
            if header.startswith("Basic "):
                try:
                    user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
                    ok = user == srv.user and password == srv.password
                except (ValueError, UnicodeDecodeError):
                    ok = False
            if not ok:
                raise _Reply(401, odata_error("-1", "Ошибка аутентификации пользователя"),
                             headers={"WWW-Authenticate": 'Basic realm="1C"'})

        def _odata(self, method: str, raw_path: str, raw_query: str) -> int:
            if not raw_path.startswith(srv.base_path):
                raise _Reply(404, odata_error("9", "Не найден ресурс"))
            if "+" in raw_query:  # a real УТ 11 fails on '+' in the query string
                raise _Reply(500, odata_error("-1", "Ошибка разбора строки запроса"))
            path = unquote(raw_path[len(srv.base_path):].strip("/"))
            params: dict[str, str] = {}
            for pair in raw_query.split("&") if raw_query else []:
                k, _, v = pair.partition("=")
                params[unquote(k)] = unquote(v)
            set_name = path.split("(")[0].split("/")[0] or None
            fault = srv.faults.take(method, set_name)
            if fault and fault.kind == "unauthorized":
                raise _Reply(401, odata_error("-1", "Ошибка аутентификации пользователя"),
                             headers={"WWW-Authenticate": 'Basic realm="1C"'})
            self._auth()
            if fault:
                self._apply_fault_before(fault, set_name)
            if path == "$metadata":
                self._send(200, srv.metadata_xml(), "application/xml;charset=utf-8")
                return 200
            m = _ENTITY.match(path)
            name = m.group("set") if m else path.removesuffix("/$count")
            if name not in srv.published or name not in ALL_SETS:
                raise _Reply(404, odata_error("9", f"Не найден объект {name}: объект не опубликован "
                                                   "в стандартном интерфейсе OData"))
            fields = srv.published[name]
            if method == "POST" and not m:
                return self._post(name, fields, fault)
            if method == "PATCH" and m:
                return self._patch(name, m.group("ref").lower(), fields)
            if method != "GET":
                raise _Reply(405, odata_error("-1", "Метод не поддерживается"))
            if m:
                row = next((r for r in srv.dataset.rows(name) if str(r.get("Ref_Key", "")).lower()
                            == m.group("ref").lower()), None)
                if row is None:
                    raise _Reply(404, odata_error("9", "Объект не найден"))
                doc = {"odata.metadata": f"{srv.url}/$metadata#{name}/@Element",
                       **self._select(row, params.get("$select"), fields)}
                return self._json(200, doc, fault)
            rows = self._query(name, params, fields)
            if path.endswith("/$count"):
                self._send(200, str(len(rows)).encode(), "text/plain;charset=utf-8")
                return 200
            if params.get("$format") != "json":
                atom = (f'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
                        f'<title type="text">{name}</title></feed>').encode()
                self._send(200, atom, "application/atom+xml;type=feed;charset=utf-8")
                return 200
            total = len(rows)
            skip = int(params.get("$skip", 0) or 0)
            shift = srv.faults.shift.get(name, 0)
            skip = max(0, skip - shift)
            top = int(params["$top"]) if params.get("$top") else None
            page = rows[skip: skip + top if top is not None else None]
            doc = {"odata.metadata": f"{srv.url}/$metadata#{name}"}
            if params.get("$inlinecount") == "allpages":
                doc["odata.count"] = str(total)
            doc["value"] = [self._select(r, params.get("$select"), fields) for r in page]
            return self._json(200, doc, fault)

        def _query(self, name: str, params: dict[str, str], fields: set[str]) -> list[dict[str, Any]]:
            orderby = params.get("$orderby") or ",".join(KEYS.get(name, ("Ref_Key",)))
            for part in orderby.split(","):
                if part.strip() and part.split()[0] not in fields:
                    raise _Reply(400, odata_error("6", f"Неизвестное поле {part.split()[0]}"))
            rows = srv.sorted_rows(name, orderby)
            if params.get("$filter"):
                try:
                    pred = compile_filter(params["$filter"], fields)
                except FilterError as exc:
                    raise _Reply(400, odata_error("14", f"Ошибка в выражении $filter: {exc}")) from None
                rows = [r for r in rows if pred(r)]
            return rows

        @staticmethod
        def _select(row: dict[str, Any], select: str | None, fields: set[str]) -> dict[str, Any]:
            wanted = [f.strip() for f in select.split(",")] if select else [f for f in row if f in fields]
            for f in wanted:
                if f not in fields:
                    raise _Reply(400, odata_error("6", f"Неизвестное поле {f}"))
            return {f: row.get(f) for f in wanted}

        def _json(self, status: int, doc: dict[str, Any], fault: Fault | None = None,
                  headers: dict[str, str] | None = None) -> int:
            body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
            ctype = "application/json;charset=utf-8"
            if fault:
                if fault.kind == "malformed_json":
                    body = b"{\"value\": [ <html>Server Error</html>"
                elif fault.kind == "truncated_json":
                    body = body[: max(1, len(body) // 2)]
                elif fault.kind == "odata_error_200":
                    body = odata_error("-1", "Ошибка СУБД: превышено время ожидания блокировки")
                elif fault.kind == "charset_1251":
                    ctype = "application/json;charset=windows-1251"
            self._send(status, body, ctype, headers)
            return status

        def _apply_fault_before(self, fault: Fault, set_name: str | None) -> None:
            kind = fault.kind
            if kind == "status":
                code = int(fault.params.get("status", 500))
                raise _Reply(code, odata_error("-1", "Сервер 1С:Предприятия временно недоступен"))
            if kind == "delay":
                time.sleep(float(fault.params.get("seconds", 1)))
            elif kind == "reset":
                self.connection.shutdown(socket.SHUT_RDWR)
                raise ConnectionError("reset by fault")
            elif kind == "gone":
                raise _Reply(404, odata_error("9", f"Не найден объект {set_name}"))
            elif kind == "duplicate_rows" and set_name:
                # as if rows were inserted ahead of the cursor: this and later pages repeat rows
                srv.faults.shift[set_name] = srv.faults.shift.get(set_name, 0) + int(fault.params.get("rows", 2))

        def _post(self, name: str, fields: set[str], fault: Fault | None) -> int:
            if name not in WRITE_SETS:
                raise _Reply(405, odata_error("-1", "Создание объектов этого типа не поддерживается"))
            try:
                body = json.loads(self._body().decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise _Reply(400, odata_error("-1", "Ошибка разбора тела запроса")) from None
            row = self._clean(name, body, fields)
            ref = str(row.get("Ref_Key") or uuid.uuid4()).lower()
            with srv.dataset.lock:
                existing = srv.dataset.rows(name)
                if any(str(r.get("Ref_Key", "")).lower() == ref for r in existing):
                    raise _Reply(500, odata_error("-1", "Запись с таким ключом уже существует"))
                row["Ref_Key"] = ref
                row.setdefault("DataVersion", "AAAAAQAAAAA=")
                row.setdefault("DeletionMark", False)
                seq = len(existing) + 1
                if "Number" in ALL_SETS[name]:
                    row["Number"] = f"{seq:011d}"
                if "Code" in ALL_SETS[name]:
                    row["Code"] = f"{seq:011d}"
                for f, t in ALL_SETS[name].items():
                    row.setdefault(f, 0 if t in NUMERIC else False if t == "Edm.Boolean" else "")
                srv.dataset.add_rows(name, [row])
            if fault and fault.kind == "post_500_after_create":
                raise _Reply(500, odata_error("-1", "Ошибка при записи: превышено время ожидания"))
            doc = {"odata.metadata": f"{srv.url}/$metadata#{name}/@Element", **row}
            location = quote(f"{srv.url}/{name}(guid'{ref}')", safe=":/()'")
            return self._json(201, doc, headers={"Location": location})

        def _patch(self, name: str, ref: str, fields: set[str]) -> int:
            body = json.loads(self._body().decode("utf-8") or "{}")
            changes = self._clean(name, body, fields)
            changes.pop("Ref_Key", None)
            n = srv.dataset.update_rows(name, lambda r: str(r.get("Ref_Key", "")).lower() == ref, changes)
            if not n:
                raise _Reply(404, odata_error("9", "Объект не найден"))
            row = next(r for r in srv.dataset.rows(name) if str(r.get("Ref_Key", "")).lower() == ref)
            return self._json(200, {"odata.metadata": f"{srv.url}/$metadata#{name}/@Element", **row})

        @staticmethod
        def _clean(name: str, body: dict[str, Any], fields: set[str]) -> dict[str, Any]:
            """Like 1C: unknown fields ignored, wrongly typed numbers/booleans dropped."""
            out = {}
            for f, v in body.items():
                t = ALL_SETS[name].get(f)
                if t is None or f not in fields:
                    continue
                if t in NUMERIC and (isinstance(v, bool) or not isinstance(v, int | float)):
                    continue
                if t == "Edm.Boolean" and not isinstance(v, bool):
                    continue
                out[f] = v
            return out

    return Handler


def serve(*, host: str = "127.0.0.1", port: int = 8081, scale: float = 1.0, seed: int = 1,
          end_date: dt.date = dt.date(2026, 11, 20), user: str = "Администратор", password: str = "1c-demo") -> None:
    """Generate the company and serve it until Ctrl-C or SIGTERM."""
    started = time.monotonic()
    dataset = generate_company(seed=seed, scale=scale, end_date=end_date)
    orders = len(dataset.rows("Document_ЗаказКлиента"))
    srv = EmulatorServer(dataset, host=host, port=port, user=user, password=password).start()
    print(f"1C emulator: {orders} orders up to {end_date} (seed {seed}, scale {scale}) generated in "
          f"{time.monotonic() - started:.1f}s", flush=True)
    print(f"serving {srv.url}  (user {user!r}, password {password!r})", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
